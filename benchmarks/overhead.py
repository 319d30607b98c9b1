"""Scheduler overhead: the engine (ledger on) against a plain multiprocessing.Pool.

Both run the same per-page function — the engine's own page pipeline over the no-op stand-in
stages (``plugins.noop``, ``--noop-ms`` of CPU work a page, then the built-in extraction and
validation) — with the same worker count. The pool gets its best chunk size; both are timed from
the start of their workers to the last page. Target: engine ≥ 0.8 × the plain pool.

    python -m benchmarks.overhead [--pages 5000] [--workers 2] [--noop-ms 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from typing import Any

from benchmarks.common import (
    Stopwatch,
    header,
    noop_archive,
    quiet_logs,
    table,
    verdict,
)
from engine.api import Engine
from engine.config import EngineConfig
from engine.discovery import iter_documents
from engine.pipeline import PagePipeline
from engine.registry import PluginRegistry

_pipeline: PagePipeline | None = None


def _init(config: EngineConfig) -> None:
    global _pipeline
    _pipeline = PagePipeline(PluginRegistry.for_run(config.plugins), config)


def _process(task: Any) -> str:
    assert _pipeline is not None
    return _pipeline.process(task).status


def plain_pool(config: EngineConfig, tasks: list[Any], workers: int, chunksize: int) -> float:
    ctx = multiprocessing.get_context(config.mp_context)
    with Stopwatch() as watch:
        with ctx.Pool(workers, initializer=_init, initargs=(config,)) as pool:
            done = sum(1 for _ in pool.imap_unordered(_process, tasks, chunksize=chunksize))
    assert done == len(tasks)
    return watch.seconds


def engine_run(config: EngineConfig, folder: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-out-") as out:
        with Stopwatch() as watch:
            summary = Engine(config.replace(out_dir=out)).run(folder)
    return watch.seconds, summary.pages_ok + summary.pages_review


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noop-ms", type=float, default=5.0)
    args = parser.parse_args(argv)
    quiet_logs()
    config = EngineConfig(workers=str(args.workers), plugins=("plugins.noop",), options={"noop_ms": args.noop_ms},
                          max_pages_per_worker=0)
    with noop_archive(args.pages) as folder:
        pipeline = PagePipeline(PluginRegistry.for_run(config.plugins), config)
        tasks = [t for doc in iter_documents([str(folder)]) for t in pipeline.ingest(doc)]
        pool_times = {size: plain_pool(config, tasks, args.workers, size) for size in (1, 8, 32, 128)}
        best_chunk = min(pool_times, key=pool_times.get)
        engine_seconds, pages = engine_run(config, str(folder))
    with noop_archive(2 * args.pages) as double:
        double_seconds, _ = engine_run(config, str(double))
    assert pages == args.pages
    pool_rate = args.pages / pool_times[best_chunk]
    engine_rate = args.pages / engine_seconds
    ratio = engine_rate / pool_rate
    rows = [[f"Pool.imap_unordered chunksize={size}", round(seconds, 2), round(args.pages / seconds)]
            for size, seconds in pool_times.items()]
    rows.append(["pagemill engine (ledger on)", round(engine_seconds, 2), round(engine_rate)])
    print(header(f"Scheduler overhead: {args.pages} no-op pages of {args.noop_ms:g} ms, {args.workers} workers"))
    print(table(["runner", "wall s", "pages/s"], rows))
    marginal = args.pages / max(1e-9, double_seconds - engine_seconds)
    fixed = max(0.0, 2 * engine_seconds - double_seconds)
    print(f"\nengine / best pool = {ratio:.2f} (target ≥ 0.8: {verdict(ratio >= 0.8)})")
    print(f"engine at {2 * args.pages} pages: {double_seconds:.2f} s → marginal rate {marginal:.0f} pages/s "
          f"({marginal / pool_rate:.2f} × the pool), fixed cost a run {fixed:.2f} s (start, ingest, outputs)")
    return {"engine_rate": engine_rate, "pool_rate": pool_rate, "ratio": ratio, "marginal_rate": marginal,
            "fixed_seconds": fixed}


if __name__ == "__main__":
    main()
