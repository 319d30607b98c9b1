"""The ``pagemill`` commands around runs: status, runs, plugins, sample."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def add_commands(commands: Any) -> None:
    status = commands.add_parser("status", help="the runs of an output folder and their page counts")
    status.add_argument("dir", metavar="DIR")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(handler=command_status)

    runs = commands.add_parser("runs", help="list the runs recorded in an output folder's ledger")
    runs.add_argument("dir", metavar="DIR", nargs="?", default=".")
    runs.set_defaults(handler=command_runs)

    plugins = commands.add_parser("plugins", help="list every plugin, where it came from and its hooks")
    plugins.add_argument("--plugin", action="append", default=[], metavar="PATH|MODULE")
    plugins.set_defaults(handler=command_plugins)

    sample = commands.add_parser("sample", help="generate a sample archive of scanned ticket PDFs with ground truth")
    sample.add_argument("out", metavar="OUT")
    sample.add_argument("--pages", type=int, default=20, help="pages in all (20)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--no-broken", action="store_true", help="leave out the deliberately broken file")
    sample.set_defaults(handler=command_sample)

    export = commands.add_parser("export", help="write the results from an output folder's ledger, also during a run")
    export.add_argument("dir", metavar="DIR")
    export.add_argument("--format", choices=["jsonl", "csv", "xlsx"], default="xlsx")
    export.add_argument(
        "-o", "--output", metavar="FILE",
        help="where to write: xlsx, the workbook (default DIR/results.xlsx); jsonl, the file (default "
             "DIR/results.jsonl); csv, the results table (default DIR/results.csv), with review.csv beside it. "
             "A folder takes the file under its usual name. While a run is writing DIR, jsonl and csv go to "
             "DIR/export/ by default: the run's own results files are its to write")
    export.set_defaults(handler=command_export)

    bench = commands.add_parser(
        "bench", help="measure pages/s, speed-up and efficiency at several worker counts",
        description="Columns: wall s, the median of --repeat runs (workers started before the clock); pages/s; "
                    "speed-up, pages/s over that of 1 worker (always measured); efficiency, speed-up / workers; "
                    "CPU util, CPU seconds of the parent, its workers and their children (tesseract) / (wall x "
                    "workers); parent MB and worker + tesseract MB, peak RSS of the parent and of the largest "
                    "worker with its children. A run under 1 s is too short to compare: no speed-up is shown.")
    bench.add_argument("inputs", nargs="*", metavar="INPUT", help="an archive to measure (default: a generated one)")
    bench.add_argument("--workers", default=None,
                       help="comma-separated worker counts (default: 1 to the CPU count); 1 is added when missing")
    bench.add_argument("--repeat", type=int, default=1, help="runs per worker count; the median wall is shown (1)")
    bench.add_argument("--pages", type=int, default=None, help="pages of the generated archive (40; noop: 400)")
    bench.add_argument("--stages", choices=["full", "noop"], default="full",
                       help="full: the real stages; noop: a constant-cost stand-in, to measure the scheduler alone")
    bench.add_argument("--noop-ms", type=float, default=5.0, help="CPU milliseconds per stand-in page (5)")
    bench.add_argument("--plot", metavar="FILE.png", help="draw pages/s and efficiency against workers")
    bench.add_argument("--json", dest="json_out", metavar="FILE", help="keep the figures as JSON")
    bench.set_defaults(handler=command_bench)


def _console() -> Console:
    """Rich output on a terminal; piped to a file or a program, lines are never cut to a width."""
    return Console(soft_wrap=True) if sys.stdout.isatty() else Console(soft_wrap=True, width=100_000)


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A table on a terminal; elsewhere plain tab-separated lines (a header, then one per row),
    whole, for a file or another program to read."""
    if not sys.stdout.isatty():
        for row in [columns, *rows]:
            sys.stdout.write("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row) + "\n")
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    _console().print(table)


def command_status(args: argparse.Namespace, registry: Any) -> int:
    from engine.ledger import open_existing

    with open_existing(Path(args.dir), read_only=True) as ledger:
        runs = runs_now(ledger.runs(), Path(args.dir))
        counts = ledger.counts()
    if args.json:
        _console().print_json(json.dumps({"runs": runs, "pages": counts}, default=str))
        return 0
    _print_runs(runs)
    if not sys.stdout.isatty():
        sys.stdout.write("\n")
    _print_table(f"pages in {args.dir}", list(counts), [[str(v) for v in counts.values()]])
    return 0


def command_runs(args: argparse.Namespace, registry: Any) -> int:
    from engine.ledger import open_existing

    with open_existing(Path(args.dir), read_only=True) as ledger:
        runs = runs_now(ledger.runs(), Path(args.dir))
    _print_runs(runs)
    return 0


def runs_now(runs: list[dict[str, Any]], out_dir: Path) -> list[dict[str, Any]]:
    """``runs`` as they stand now: a run still marked running while no process holds the folder's
    lock was killed (the next run marks it interrupted in the ledger; a reader only says so). It
    gets status ``interrupted`` and ``process_gone``. While a run holds the lock, only the latest
    run marked running can be it."""
    from engine.outlock import held_by_a_run

    running = [run for run in runs if run.get("status") == "running"]
    if not running:
        return runs
    held = held_by_a_run(out_dir)
    if held is None:  # cannot be told: as recorded
        return runs
    live = running[-1]["id"] if held else None
    for run in running:
        if run["id"] != live:
            run["status"], run["process_gone"] = "interrupted", True
    return runs


def _print_runs(runs: list[dict[str, Any]]) -> None:
    """Each run with the pages it committed (counted in the ledger, so a run that was killed
    shows what it did)."""
    rows = []
    for run in runs:
        pages = run.get("pages") or {}
        status = str(run.get("status") or "") + (" (process gone)" if run.get("process_gone") else "")
        rows.append([str(run.get("id")), str(run.get("started") or ""), str(run.get("finished") or ""),
                     status, str(pages.get("pages", 0)), str(pages.get("ok", 0)),
                     str(pages.get("review", 0)), str(pages.get("failed", 0))])
    _print_table("runs", ["id", "started", "finished", "status", "pages", "ok", "review", "failed"], rows)


def command_plugins(args: argparse.Namespace, registry: Any) -> int:
    # the registry holds every plugin: pagemill.toml's, PAGEMILL_PLUGINS' and --plugin's
    rows = [[row.name, row.origin, ", ".join(h.removeprefix("pagemill_") for h in row.hooks)]
            for row in registry.listing()]
    _print_table("pagemill plugins", ["plugin", "from", "hooks"], rows)
    return 0


def command_sample(args: argparse.Namespace, registry: Any) -> int:
    from loguru import logger

    from engine.sample import generate_sample

    archive = generate_sample(Path(args.out), pages=args.pages, seed=args.seed, broken=not args.no_broken)
    logger.info(
        "{} documents ({} pages) in {}; ground truth in {}",
        len(archive.documents), args.pages, args.out, archive.truth_path,
    )
    return 0


def command_bench(args: argparse.Namespace, registry: Any) -> int:
    import os
    import tempfile

    from engine.bench import format_table, run_bench, save_json, save_plot
    from engine.config import EngineConfig
    from engine.errors import ConfigError

    try:
        counts = [int(n) for n in args.workers.split(",")] if args.workers else list(range(1, (os.cpu_count() or 1) + 1))
    except ValueError:
        raise ConfigError(f"--workers takes comma-separated counts, not {args.workers!r}") from None
    if not counts or min(counts) < 1:
        raise ConfigError("--workers counts must be at least 1")
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-input-") as scratch:
        inputs = list(args.inputs)
        options: dict[str, Any] = {}
        plugins: tuple[str, ...] = ()
        if args.stages == "noop":
            from plugins.noop import write_noop_document

            plugins = ("plugins.noop",)
            options["noop_ms"] = args.noop_ms
            if not inputs:
                pages = args.pages or 400
                for number in range(0, pages, 10):
                    write_noop_document(Path(scratch) / f"doc{number:05d}.noop", min(10, pages - number))
                inputs = [scratch]
        elif not inputs:
            from engine.bench import generate_archive

            inputs = [generate_archive(Path(scratch) / "archive", args.pages or 40)]
        config = EngineConfig.load(plugins=plugins, options=options)
        rows = run_bench(config, inputs, counts, repeat=max(1, args.repeat))
    table = format_table(rows)
    _console().print(table, markup=False, highlight=False)
    meta = {"stages": args.stages, "repeat": args.repeat}  # save_json adds the machine: CPU model, count
    if args.json_out:
        save_json(rows, Path(args.json_out), meta)
    if args.plot:
        save_plot(rows, Path(args.plot), f"pagemill bench ({args.stages} stages)")
    return 0


def command_export(args: argparse.Namespace, registry: Any) -> int:
    from loguru import logger

    from engine.ledger import open_existing
    from engine.sinks import write_outputs
    from engine.xlsx_export import write_xlsx

    from engine.outlock import held_by_a_run

    out = Path(args.dir)
    running = bool(held_by_a_run(out)) and args.format != "xlsx"  # a run writes no results.xlsx
    targets = export_targets(out, args.format, args.output, running)
    if running and not args.output:
        logger.info("a run is writing {}: its results files are rewritten when it ends, so this export goes to {}",
                    out, out / EXPORT_FOLDER)
    with open_existing(out, read_only=True) as ledger:  # also while a run is writing it
        runs = ledger.runs()
        report = (runs[-1].get("summary") or {}) if runs else {}
        # the columns the latest run writes its outputs with (it may still be running)
        field_order = (ledger.last_config() or {}).get("field_order") or report.get("field_order") or None
        if args.format == "xlsx":
            written = [write_xlsx(ledger, targets["results.xlsx"], report, field_order)]
        else:
            written = list(write_outputs(ledger, out, report, field_order, targets=targets).values())
    logger.info("wrote {}", ", ".join(str(p) for p in written))
    return 0


EXPORT_FOLDER = "export"  # under DIR: where jsonl and csv exports go while a run writes DIR


def export_targets(out: Path, kind: str, output: str | None, running: bool = False) -> dict[str, Path]:
    """The files an export writes, by their usual name: ``output`` names the main one (a folder
    takes it under its usual name); review.csv goes beside results.csv. While a run is writing
    ``out`` (``running``), the default folder is ``out/export``, and a target that is one of the
    run's own output files is refused: the run rewrites them when it ends."""
    from engine.errors import ConfigError
    from engine.sinks import OUTPUT_NAMES

    main = {"xlsx": "results.xlsx", "jsonl": "results.jsonl", "csv": "results.csv"}[kind]
    target = (out / EXPORT_FOLDER if running else out) / main
    if output:
        target = Path(output)
        if target.is_dir():
            target = target / main
    targets = {main: target}
    if kind == "csv":
        targets["review.csv"] = target.with_name("review.csv")
        if target.name == "review.csv":
            raise ConfigError(f"-o {output}: review.csv is written beside the results table; "
                              f"name the results table otherwise")
    if running:
        owned = {(out / name).resolve() for name in OUTPUT_NAMES}
        for path in targets.values():
            if path.resolve() in owned:
                raise ConfigError(f"{path} is an output of the run writing {out}, rewritten when it ends: "
                                  f"export elsewhere (-o FILE), or leave -o out for {out / EXPORT_FOLDER}")
    return targets
