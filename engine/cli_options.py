"""The ``pagemill`` command line: sub-commands, options (ours and the plugins'), and how they
become an EngineConfig.

Plugins can add options, so the plugins are loaded before the parser is built: those named in
pagemill.toml (or ``--config FILE``), in ``PAGEMILL_PLUGINS`` and by ``--plugin``, read from the
command line by a first, tolerant pass (:func:`early_options`).
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.config import EngineConfig, OptionSpec, read_sources
from engine.plugin_options import add_plugin_options
from engine.registry import PluginRegistry

# option dest -> EngineConfig field, for the options that set the config
CONFIG_OPTIONS = (
    "workers", "priority", "mp_context", "dpi", "lang", "psm", "force_ocr", "template", "review_below",
    "password", "max_image_pixels", "page_timeout", "grace", "max_attempts", "max_pages_per_worker",
    "max_worker_rss_mb", "min_free_memory_mb", "min_free_disk_mb", "fresh", "retry_failed", "executor",
    "scheduler_address", "breaker_give_up",
)
# the commands whose options depend on the config sources (the others never read them)
CONFIGURED_COMMANDS = ("run", "resume", "plugins")
PLUGIN_SPECS = "plugin_option_specs"  # where the parser keeps the plugins' options for config_overrides


def early_options(argv: list[str]) -> argparse.Namespace:
    """-v/-q, --plugin, --config and the command, wherever they stand; everything else is left."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("-v", "--verbose", action="count", default=0)
    early.add_argument("-q", "--quiet", action="count", default=0)
    early.add_argument("--plugin", action="append", default=[])
    early.add_argument("--config", default=None)
    early.add_argument("command", nargs="?", default=None)
    known, _ = early.parse_known_args(argv)
    return known


def verbosity(argv: list[str]) -> int:
    """-v and -q as the log level wants them: 0 normal, above more, below 0 quiet."""
    try:
        known = early_options(argv)
    except SystemExit:  # a malformed line: the real parser says why
        return 0
    return known.verbose - known.quiet


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, PluginRegistry]:
    """The parser, with the options of every plugin (the plugins are loaded first for that)."""
    early = early_options(argv)
    sources = read_sources(early.config) if early.command in CONFIGURED_COMMANDS else [{}, {}]
    refs = [*plugins_of(sources), *early.plugin]
    load_entry_points = True
    for layer in sources:
        if "load_entry_points" in layer:
            load_entry_points = EngineConfig.from_mapping({"load_entry_points": layer["load_entry_points"]}).load_entry_points
    registry = PluginRegistry.for_run(refs, load_entry_points=load_entry_points)
    out_configured = any(layer.get("out_dir") for layer in sources)

    parser = argparse.ArgumentParser(
        prog="pagemill",
        description="Run archives of scanned documents page by page through pluggable stages.",
        epilog="exit codes: 0 all pages done, 1 some pages failed, 2 bad usage or config, "
        "3 critical stop, 130 cancelled (resumable)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (-vv: all)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="warnings and errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    from engine import cli, cli_admin

    run = commands.add_parser("run", help="process files and folders into an output folder")
    run.add_argument("inputs", nargs="*", metavar="INPUT", help="files, folders (recursive), or - for paths on stdin")
    run.add_argument("--out", required=not out_configured, metavar="DIR",
                     help="output folder (its ledger makes runs resumable); default: out_dir of the config")
    for level in ("urgent", "high", "low"):
        run.add_argument(f"--{level}", action="append", default=[], metavar="INPUT", help=f"an input at priority {level}")
    _add_run_options(run, registry)
    run.set_defaults(handler=cli.command_run)

    resume = commands.add_parser("resume", help="continue the last run of an output folder with its stored settings")
    resume.add_argument("dir", metavar="DIR")
    _add_run_options(resume, registry, resume=True)
    resume.set_defaults(handler=cli.command_resume)

    cli_admin.add_commands(commands)
    for command in commands.choices.values():  # -v/-q after the command too (counted by early_options)
        command.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        command.add_argument("-q", "--quiet", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser, registry


def plugins_of(sources: list[dict[str, Any]]) -> list[str]:
    """The plugin refs the config sources name, in order, each once."""
    refs: list[str] = []
    for layer in sources:
        if layer.get("plugins"):
            refs.extend(ref for ref in EngineConfig.from_mapping({"plugins": layer["plugins"]}).plugins if ref not in refs)
    return refs


def _add_run_options(parser: argparse.ArgumentParser, registry: PluginRegistry, resume: bool = False) -> None:
    S = argparse.SUPPRESS
    parser.add_argument("--config", metavar="FILE", help="a pagemill.toml (default: ./pagemill.toml when present)")
    parser.add_argument("--plugin", action="append", default=[], metavar="PATH|MODULE", help="load a plugin (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")
    parser.add_argument("--sink", action="append", default=[], metavar="URL",
                        help="also write each finished ticket to sqlite:///path.db as the run goes")
    workers = parser.add_argument_group("workers and scheduling")
    workers.add_argument("--workers", default=None, help="auto (1..CPUs, the default), N, or MIN:MAX")
    workers.add_argument("--priority", default=None, choices=["urgent", "high", "normal", "low"], help="priority of the inputs (normal)")
    workers.add_argument("--page-timeout", type=float, default=None, metavar="S", help="seconds a page may take (300)")
    workers.add_argument("--grace", type=float, default=None, metavar="S", help="seconds pages in flight get on cancel (30)")
    workers.add_argument("--max-attempts", type=int, default=None, metavar="N", help="attempts per page for transient errors (3)")
    workers.add_argument("--breaker-give-up", type=float, default=None, metavar="SECONDS",
                         help="seconds a plugin's circuit breaker stays open, with nothing else left to run, "
                              "before the pages it holds fail (600)")
    workers.add_argument("--max-pages-per-worker", type=int, default=None, metavar="N", help="recycle a worker after N tasks (1000; 0: never)")
    workers.add_argument("--max-worker-rss", dest="max_worker_rss_mb", type=int, default=None, metavar="MB", help="recycle a worker past this RSS (1024)")
    workers.add_argument("--min-free-memory", dest="min_free_memory_mb", type=int, default=None, metavar="MB", help="retire workers below this free memory (512)")
    workers.add_argument("--min-free-disk", dest="min_free_disk_mb", type=int, default=None, metavar="MB", help="refuse to start below this free disk (100)")
    workers.add_argument("--mp-context", default=None, choices=["forkserver", "spawn", "fork"], help=S if resume else "how workers start (forkserver)")
    workers.add_argument("--executor", default=None, choices=["local", "dask", "dask-local"], help="where pages run (local; dask when --scheduler is given)")
    workers.add_argument("--scheduler", dest="scheduler_address", default=None, metavar="ADDRESS", help="run on the Dask cluster at tcp://HOST:8786 (implies --executor dask)")
    if not resume:
        workers.add_argument("--fresh", action="store_true", default=None, help="redo every page, ignoring earlier runs in DIR")
    workers.add_argument("--retry-failed", action="store_true", default=None,
                         help="also redo pages that failed in earlier runs (this time only)")
    stages = parser.add_argument_group("built-in stages")
    stages.add_argument("--dpi", type=int, default=None, help="render resolution for pages that are not plain scans (300)")
    stages.add_argument("--lang", default=None, help="tesseract language(s), e.g. eng or eng+deu (eng)")
    stages.add_argument("--psm", type=int, default=None, help="tesseract page segmentation mode: 1 or 3 to 13 (6)")
    stages.add_argument("--force-ocr", action="store_true", default=None, help="OCR pages that have a text layer too")
    stages.add_argument("--template", default=None, help="bundled template name or path to a .toml (truck_ticket)")
    stages.add_argument("--review-below", type=float, default=None, metavar="C", help="flag fields with confidence below C (0.6)")
    stages.add_argument("--password", default=None, help="password for encrypted PDFs")
    stages.add_argument("--max-image-pixels", type=int, default=None, metavar="N", help="refuse larger images and pages")
    parser.set_defaults(**{PLUGIN_SPECS: add_plugin_options(registry, parser)})


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The values given on the command line (None for those not given), the plugins' included."""
    overrides = {name: getattr(args, name, None) for name in CONFIG_OPTIONS}
    overrides["out_dir"] = getattr(args, "out", None)
    if getattr(args, "plugin", None):
        overrides["plugins"] = tuple(args.plugin)
    if getattr(args, "sink", None):
        overrides["sinks"] = tuple(args.sink)
    specs = plugin_option_specs(args)
    options = {name: getattr(args, name) for name in specs if getattr(args, name, None) is not None}
    if options:
        overrides["options"] = options
    return overrides


def plugin_option_specs(args: argparse.Namespace) -> dict[str, OptionSpec]:
    return dict(getattr(args, PLUGIN_SPECS, None) or {})


def inputs_by_priority(args: argparse.Namespace, stored: dict[str, Any] | None, priority: str = "normal") -> dict[str, list[str]]:
    """{priority: inputs} from the command line (plain inputs at ``priority``, the config's), or
    the stored inputs of a resumed run."""
    if stored is not None:
        from engine.api import stored_inputs

        return stored_inputs(stored)
    groups: dict[str, list[str]] = {}
    if args.inputs:
        groups.setdefault(priority, []).extend(args.inputs)
    for level in ("urgent", "high", "low"):
        if getattr(args, level):
            groups.setdefault(level, []).extend(getattr(args, level))
    return groups
