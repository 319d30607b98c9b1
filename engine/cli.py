"""The ``pagemill`` command.

Exit codes (DESIGN.md): 0 every page done, 1 some pages failed (partial), 2 bad usage or config,
3 critical stop, 130 cancelled (resumable with ``pagemill resume DIR``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from loguru import logger

from engine import cli_options
from engine.config import NEVER_STORED, ONE_SHOT, EngineConfig, read_sources
from engine.discovery import PeekedLines
from engine.errors import ConfigError, PagemillError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_CRITICAL, EXIT_CANCELLED = 0, 1, 2, 3, 130


def configure_logging(verbosity: int) -> None:
    """The one sink: stderr, one line per message; written through sys.stderr at call time so
    that the live progress display can keep log lines above itself."""
    level = {0: "INFO", 1: "DEBUG"}.get(verbosity, "TRACE") if verbosity >= 0 else "WARNING"
    logger.remove()
    logger.add(lambda message: sys.stderr.write(message), level=level, format="{level: <7} {message}", colorize=False)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    level = cli_options.verbosity(argv)
    configure_logging(level)  # before plugins load: their log lines obey -v/-q too
    _find_modules_in_cwd()
    try:
        return _main(argv)
    except KeyboardInterrupt:
        logger.warning("cancelled")
        return EXIT_CANCELLED
    except PagemillError as exc:
        logger.error("{}", exc)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_CRITICAL
    except OSError as exc:
        logger.error("{}", describe_os_error(exc))
        return EXIT_USAGE if isinstance(exc, USAGE_OS_ERRORS) else EXIT_CRITICAL
    except Exception as exc:  # noqa: BLE001 - never a traceback unless asked for
        if level > 0:
            logger.opt(exception=exc).error("internal error: {}: {}", type(exc).__name__, exc)
        else:
            logger.error("internal error: {}: {} (run with -v for the traceback)", type(exc).__name__, exc)
        return EXIT_CRITICAL


# a path of the wrong kind (a file where a folder is needed, a folder that is not there): usage
USAGE_OS_ERRORS = (NotADirectoryError, IsADirectoryError, FileExistsError, FileNotFoundError)


def describe_os_error(exc: OSError) -> str:
    """One line naming the path(s): ``cannot use PATH: No such file or directory``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    if not paths:
        return f"{reason} ({type(exc).__name__})"
    return f"cannot use {' → '.join(paths)}: {reason}"


def _find_modules_in_cwd() -> None:
    """``--plugin package.module`` finds modules of the current folder, as ``python -m`` does;
    after the installed ones, so that a file in an archive folder never hides a library."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)


def _main(argv: list[str]) -> int:
    parser, registry = cli_options.build_parser(argv)
    args = parser.parse_args(argv)
    early = cli_options.early_options(argv)
    args.verbose, args.quiet = early.verbose, early.quiet  # wherever they stood
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return int(args.handler(args, registry) or 0)


# ----------------------------------------------------------------------- run
def command_run(args: argparse.Namespace, registry: Any, stored: dict[str, Any] | None = None) -> int:
    from engine.api import Engine
    from engine.progress import ProgressDisplay

    config = run_config(args, stored)
    inputs = cli_options.inputs_by_priority(args, stored, config.priority)
    if not inputs:
        raise ConfigError("no input given: pagemill run INPUT... --out DIR")
    display = ProgressDisplay(enabled=not args.no_progress)
    engine = Engine(config, on_progress=lambda progress: _show(display, progress))
    cancels = {"count": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        cancels["count"] += 1
        starting = engine.session is None and engine.last_summary is None  # no run under way yet
        if cancels["count"] == 1:
            if starting:
                logger.warning("cancelling: the run stops as soon as it has started (Ctrl-C again to stop now)")
            else:
                logger.warning("cancelling: no new pages; pages in flight get {:g} s to finish "
                               "(Ctrl-C again to stop now)", config.grace)
            engine.cancel()
        else:
            engine.cancel(immediate=True)
            if starting or cancels["count"] > 2:
                # nothing started yet, or the run is stuck where it cannot look (reading a slow
                # file): stop where it is; what was committed stays committed
                raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    display.start()
    try:
        with stdin_checked(inputs), engine:
            for _ in engine.process(inputs):
                pass
    finally:
        display.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = engine.last_summary
    if summary is None:
        return EXIT_CRITICAL
    if args.quiet <= 0:  # the summary is the result, shown with or without the progress display
        display.console.print(display.render_summary(summary))
    if summary.status == "cancelled":
        logger.warning("cancelled; every finished page is kept. Resume with: pagemill resume {}", config.out_dir)
    elif summary.status == "critical":
        logger.error("stopped: {}", summary.message)
    if config.out_dir:
        logger.info("results in {}", config.out_dir)
    return summary.exit_code


RUN_RECORD = ("inputs", "field_order", "password_given")  # stored with a run's settings, but not settings


def run_config(args: argparse.Namespace, stored: dict[str, Any] | None = None) -> EngineConfig:
    """defaults < pagemill.toml < PAGEMILL_* < arguments. For a resume: the stored settings <
    arguments, with pagemill.toml and PAGEMILL_* giving only what is never stored (the password);
    the one-shot --fresh and --retry-failed apply only when given to the resume itself. A run
    that was given a password needs one again: without it, its encrypted documents would fail."""
    overrides = cli_options.config_overrides(args)
    specs = cli_options.plugin_option_specs(args)
    if stored is None:
        return EngineConfig.load(args.config, plugin_options=specs, **overrides)
    base = {k: v for k, v in stored.items() if v is not None and k not in RUN_RECORD and k not in ONE_SHOT}
    unstored = [{k: v for k, v in layer.items() if k in NEVER_STORED} for layer in read_sources(args.config)]
    given = {k: v for k, v in overrides.items() if v is not None}
    config = EngineConfig.from_layers([*unstored, base, given], specs)
    if stored.get("password_given") and not config.password:
        raise ConfigError(f"{getattr(args, 'dir', config.out_dir)}: the run being resumed was given a password for "
                          f"encrypted PDFs, which is never stored: pass --password again (or set PAGEMILL_PASSWORD)")
    return config


@contextmanager
def stdin_checked(inputs: dict[str, list[str]]) -> Iterator[None]:
    """With ``-`` among the inputs, stdin must list a path: an empty list is bad usage, found
    before the run starts (its first line is read ahead and handed on with the rest)."""
    if not any("-" in group for group in inputs.values()):
        yield
        return
    original = sys.stdin
    lines = PeekedLines(original)
    if lines.empty():
        raise ConfigError("no documents found in - (stdin lists no paths)")
    sys.stdin = lines  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdin = original


def _show(display: Any, progress: Any) -> None:
    display.set_total(progress.pages_known, final=not progress.discovering)
    display.update(
        progress.counters,
        done_pages=progress.pages_done,
        workers_busy=progress.workers_busy,
        workers_target=progress.workers_target,
        memory_mb=progress.workers_memory_mb,
    )


def command_resume(args: argparse.Namespace, registry: Any) -> int:
    from engine.ledger import open_existing

    ledger = open_existing(Path(args.dir))
    try:
        stored = ledger.last_config()
    finally:
        ledger.close()
    if not stored:
        raise ConfigError(f"{args.dir}: the ledger holds no run to resume")
    args.out = args.dir
    return command_run(args, registry, stored)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
