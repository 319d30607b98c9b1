"""The ``pagemill`` command.

Exit codes (DESIGN.md): 0 every page done, 1 some pages failed (partial), 2 bad usage or config,
3 critical stop, 130 cancelled (resumable with ``pagemill resume DIR``).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from loguru import logger

from engine import cli_options
from engine.errors import ConfigError, CriticalError, PagemillError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_CRITICAL, EXIT_CANCELLED = 0, 1, 2, 3, 130


def configure_logging(verbosity: int) -> None:
    """The one sink: stderr, one line per message; written through sys.stderr at call time so
    that the live progress display can keep log lines above itself."""
    level = {0: "INFO", 1: "DEBUG"}.get(verbosity, "TRACE") if verbosity >= 0 else "WARNING"
    logger.remove()
    logger.add(lambda message: sys.stderr.write(message), level=level, format="{level: <7} {message}", colorize=False)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, registry = cli_options.build_parser(argv)
        args = parser.parse_args(argv)
    except PagemillError as exc:
        configure_logging(0)
        logger.error("{}", exc)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_CRITICAL
    configure_logging(args.verbose - args.quiet)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args, registry) or 0)
    except ConfigError as exc:
        logger.error("{}", exc)
        return EXIT_USAGE
    except CriticalError as exc:
        logger.error("{}", exc)
        return EXIT_CRITICAL
    except PagemillError as exc:
        logger.error("{}", exc)
        return EXIT_CRITICAL
    except KeyboardInterrupt:
        logger.warning("cancelled")
        return EXIT_CANCELLED


# ----------------------------------------------------------------------- run
def command_run(args: argparse.Namespace, registry: Any, stored: dict[str, Any] | None = None) -> int:
    from engine.api import Engine
    from engine.config import EngineConfig
    from engine.progress import ProgressDisplay

    overrides = cli_options.config_overrides(args)
    if stored is not None:
        base = {k: v for k, v in stored.items() if v is not None and k != "inputs"}
        base.update({k: v for k, v in overrides.items() if v is not None})
        config = EngineConfig.from_mapping(base)
    else:
        config = EngineConfig.load(args.config, **overrides)
    inputs = cli_options.inputs_by_priority(args, stored)
    if not inputs:
        raise ConfigError("no input given: pagemill run INPUT... --out DIR")
    display = ProgressDisplay(enabled=not args.no_progress)
    engine = Engine(config, on_progress=lambda progress: _show(display, progress))
    cancels = {"count": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        cancels["count"] += 1
        if cancels["count"] == 1:
            logger.warning(
                "cancelling: no new pages; pages in flight get {:g} s to finish (Ctrl-C again to stop now)",
                config.grace,
            )
            engine.cancel()
        else:
            engine.cancel(immediate=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    display.start()
    try:
        with engine:
            for _ in engine.process(inputs):
                pass
    finally:
        display.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = engine.last_summary
    if summary is None:
        return EXIT_CRITICAL
    display.print_summary(summary)
    if summary.status == "cancelled":
        logger.warning("cancelled; every finished page is kept. Resume with: pagemill resume {}", config.out_dir)
    elif summary.status == "critical":
        logger.error("stopped: {}", summary.message)
    if config.out_dir:
        logger.info("results in {}", config.out_dir)
    return summary.exit_code


def _show(display: Any, progress: Any) -> None:
    display.set_total(progress.pages_known)
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
