"""``pagemill bench``: the engine over one archive at several worker counts, side by side.

For each worker count (fixed, no scaling) and each repeat, a fresh run into a temporary output
folder; the table gives the median wall time, pages per second, speed-up over one worker,
parallel efficiency (speed-up / workers), CPU utilisation (CPU seconds of the parent and its
workers over wall × workers) and peak RSS of the parent and of the largest worker.
"""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import psutil

from engine.api import Engine
from engine.config import EngineConfig


@dataclass(frozen=True)
class BenchRow:
    workers: int
    wall_seconds: float
    pages: int
    pages_per_second: float
    speedup: float
    efficiency: float
    cpu_utilisation: float
    parent_rss_mb: float
    worker_rss_mb: float


def _own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _worker_cpu(engine: Engine, seen: dict[int, float]) -> None:
    """CPU seconds of each worker, by pid, as last seen (workers are the forkserver's children,
    so the parent's rusage never counts them)."""
    pool = engine._pool
    if pool is None:
        return
    for worker in list(pool.workers.values()):
        try:
            times = psutil.Process(worker.pid).cpu_times()
        except (psutil.Error, TypeError):
            continue
        seen[worker.pid] = times.user + times.system + times.children_user + times.children_system


def measure_once(config: EngineConfig, inputs: Sequence[str], workers: int, plugins: Sequence[object] = ()) -> dict[str, Any]:
    """One run with ``workers`` fixed workers; the pool starts before the clock does."""
    peak = {"parent": 0.0, "worker": 0.0}
    process = psutil.Process()
    worker_cpu: dict[int, float] = {}

    def sample(progress: Any) -> None:
        _worker_cpu(engine, worker_cpu)
        peak["parent"] = max(peak["parent"], process.memory_info().rss / 2**20)
        if engine.session is not None:
            sizes = engine.session.scheduler.worker_rss_mb.values()
            peak["worker"] = max([peak["worker"], *sizes])

    with tempfile.TemporaryDirectory(prefix="pagemill-bench-") as out:
        run_config = config.replace(workers=str(workers), out_dir=out, fresh=True)
        engine = Engine(run_config, plugins=plugins, on_progress=sample)
        with engine:
            cpu0 = _own_cpu_seconds()
            start = time.perf_counter()
            summary = engine.run(list(inputs))
            wall = time.perf_counter() - start
            _worker_cpu(engine, worker_cpu)
            cpu = _own_cpu_seconds() - cpu0 + sum(worker_cpu.values())
    peak["parent"] = max(peak["parent"], process.memory_info().rss / 2**20)
    pages = summary.pages_ok + summary.pages_review + summary.pages_failed
    return {"wall": wall, "pages": pages, "cpu": cpu, **peak}


def run_bench(
    config: EngineConfig,
    inputs: Sequence[str],
    worker_counts: Sequence[int],
    repeat: int = 1,
    plugins: Sequence[object] = (),
) -> list[BenchRow]:
    rows: list[BenchRow] = []
    base_rate = None
    for workers in worker_counts:
        runs = [measure_once(config, inputs, workers, plugins) for _ in range(repeat)]
        wall = statistics.median(r["wall"] for r in runs)
        pages = runs[0]["pages"]
        rate = pages / wall if wall else 0.0
        if base_rate is None:
            base_rate = rate / workers if workers else rate
        speedup = rate / base_rate if base_rate else 0.0
        cpu = statistics.median(r["cpu"] for r in runs)
        rows.append(
            BenchRow(
                workers=workers,
                wall_seconds=round(wall, 3),
                pages=pages,
                pages_per_second=round(rate, 2),
                speedup=round(speedup, 2),
                efficiency=round(speedup / workers, 2) if workers else 0.0,
                cpu_utilisation=round(cpu / (wall * workers), 2) if wall and workers else 0.0,
                parent_rss_mb=round(max(r["parent"] for r in runs), 1),
                worker_rss_mb=round(max(r["worker"] for r in runs), 1),
            )
        )
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    header = ("workers", "wall s", "pages/s", "speed-up", "efficiency", "CPU util", "parent MB", "worker MB")
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for row in rows:
        lines.append(
            " | ".join(
                str(v)
                for v in (row.workers, row.wall_seconds, row.pages_per_second, row.speedup, row.efficiency,
                          row.cpu_utilisation, row.parent_rss_mb, row.worker_rss_mb)
            )
        )
    return "\n".join(lines)


def save_json(rows: Sequence[BenchRow], path: Path, meta: dict[str, Any]) -> None:
    path.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2), encoding="utf-8")


def save_plot(rows: Sequence[BenchRow], path: Path, title: str) -> None:
    """pages/s and efficiency against workers (needs ``pagemill[bench]``: matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workers = [r.workers for r in rows]
    fig, left = plt.subplots(figsize=(6, 4))
    left.plot(workers, [r.pages_per_second for r in rows], "o-", color="tab:blue", label="pages/s")
    left.set_xlabel("workers")
    left.set_ylabel("pages/s", color="tab:blue")
    left.set_xticks(workers)
    left.set_ylim(bottom=0)
    right = left.twinx()
    right.plot(workers, [r.efficiency for r in rows], "s--", color="tab:orange", label="efficiency")
    right.set_ylabel("parallel efficiency", color="tab:orange")
    right.set_ylim(0, 1.1)
    left.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
