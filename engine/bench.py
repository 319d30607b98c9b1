"""``pagemill bench``: the engine over one archive at several worker counts, side by side.

For each worker count (fixed, no scaling) and each repeat, a fresh run into a temporary output
folder. Its workers are started, and each has said it is ready, before the clock starts, for every
row alike (the first row would otherwise also pay for starting the forkserver). A 1-worker row is
always measured, since speed-up and efficiency are against it.

Columns: the median wall time; pages per second; speed-up over 1 worker (pages/s ÷ pages/s at 1
worker); parallel efficiency (speed-up ÷ workers); CPU utilisation (CPU seconds of the parent, its
workers and their children such as tesseract, ÷ (wall × workers): the parent's own share comes on
top, so a busy 1-worker run may exceed 1); the peak RSS of the parent, and of the largest worker
together with its children (tesseract), sampled while the run goes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any, Sequence

from engine.api import Engine
from engine.bench_probes import RssSampler, cpu_seconds
from engine.config import EngineConfig

SHORT_SECONDS = 1.0  # below this a run is mostly start-up and output writing: no speed-up from it
BASELINE_ADDED = "1-worker baseline, added"
TOO_SHORT = "too short to compare (< 1 s)"
BASELINE_TOO_SHORT = "1-worker run too short to compare"
START_TIMEOUT = 120.0


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The facts a table of figures needs beside it: when, on what."""
    return {"date": date.today().isoformat(), "cpu": cpu_model(), "cpus": os.cpu_count(),
            "python": platform.python_version()}


@dataclass(frozen=True)
class Measurement:
    """One timed run."""

    wall: float
    pages: int
    cpu_seconds: float
    parent_rss_mb: float
    worker_rss_mb: float  # the largest worker with its children
    children_seen: bool  # a worker had a child (tesseract) in some sample
    started_in_run: int  # workers started inside the timed region (replacements only)


@dataclass(frozen=True)
class BenchRow:
    workers: int
    runs: int
    wall_seconds: float
    pages: int
    pages_per_second: float
    speedup: float
    efficiency: float
    cpu_utilisation: float
    parent_rss_mb: float
    worker_rss_mb: float
    worker_rss_with_children: bool
    comparable: bool  # this run and the 1-worker one both long enough for a speed-up
    note: str


# ------------------------------------------------------------------ running
def generate_archive(folder: Path, pages: int, seed: int = 1) -> str:
    """A generated ticket archive (its scans folder), made in a child process: rendering the
    tickets leaves ~100 MB in the process that does it, which the parent's RSS must not show.
    Spawned, so that the forkserver, if this starts it, is not started without its preloads."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(_generate, str(folder), pages, seed).result()


def _generate(folder: str, pages: int, seed: int) -> str:
    from engine.sample import generate_sample

    return str(generate_sample(Path(folder), pages=pages, seed=seed, broken=False).documents[0].parent)


def start_workers(engine: Engine, workers: int, timeout: float = START_TIMEOUT) -> None:
    """Start the engine's pool with ``workers`` workers and wait until each has sent its ready
    message (left unread for the run's scheduler, which learns the workers' call table from it)."""
    engine.start()
    pool = engine._pool
    if not hasattr(pool, "start_worker"):  # another executor: its workers are its own business
        return
    pool.resize(workers, "started before the clock")
    deadline = time.monotonic() + timeout
    for worker in list(pool.workers.values()):
        if not worker.ready:
            worker.conn.poll(max(0.0, deadline - time.monotonic()))


def measure_once(config: EngineConfig, inputs: Sequence[str], workers: int, plugins: Sequence[object] = ()) -> Measurement:
    """One run with ``workers`` fixed workers; the workers start, and are ready, before the clock does."""
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-") as out:
        run_config = config.replace(workers=str(workers), out_dir=out, fresh=True)
        with Engine(run_config, plugins=plugins) as engine:
            start_workers(engine, workers)
            started = getattr(engine._pool, "workers_started", 0)
            cpu0 = cpu_seconds(engine)
            with RssSampler(engine) as rss:
                start = time.perf_counter()
                summary = engine.run(list(inputs))
                wall = time.perf_counter() - start
                cpu = cpu_seconds(engine) - cpu0
            started_in_run = getattr(engine._pool, "workers_started", 0) - started
    peak = rss.peak_during_children or rss.peak
    return Measurement(
        wall=wall,
        pages=summary.pages_ok + summary.pages_review + summary.pages_failed,
        cpu_seconds=cpu,
        parent_rss_mb=rss.parent_mb,
        worker_rss_mb=peak.total_mb if peak else 0.0,
        children_seen=rss.peak_during_children is not None,
        started_in_run=started_in_run,
    )


def with_baseline(worker_counts: Sequence[int]) -> tuple[list[int], bool]:
    """The counts to measure, each once, in the order given, with 1 first when it is missing;
    and whether it was added."""
    counts = list(dict.fromkeys(worker_counts))
    if 1 in counts:
        return counts, False
    return [1, *counts], True


def summarise(measured: dict[int, list[Measurement]], baseline_added: bool = False) -> list[BenchRow]:
    """Rows from the runs of each worker count (1 among them); speed-up over the 1-worker median."""
    base_wall = statistics.median(m.wall for m in measured[1])
    base_rate = measured[1][0].pages / base_wall if base_wall else 0.0
    rows = []
    for workers, runs in measured.items():
        wall = statistics.median(m.wall for m in runs)
        pages = runs[0].pages
        rate = pages / wall if wall else 0.0
        speedup = rate / base_rate if base_rate else 0.0
        notes = []
        if workers == 1 and baseline_added:
            notes.append(BASELINE_ADDED)
        if wall < SHORT_SECONDS:
            notes.append(TOO_SHORT)
        elif base_wall < SHORT_SECONDS:
            notes.append(BASELINE_TOO_SHORT)
        rows.append(BenchRow(
            workers=workers,
            runs=len(runs),
            wall_seconds=round(wall, 3),
            pages=pages,
            pages_per_second=round(rate, 2),
            speedup=round(speedup, 2),
            efficiency=round(speedup / workers, 2),
            cpu_utilisation=round(statistics.median(m.cpu_seconds / (m.wall * workers) if m.wall else 0.0
                                                    for m in runs), 2),
            parent_rss_mb=round(max(m.parent_rss_mb for m in runs), 1),
            worker_rss_mb=round(max(m.worker_rss_mb for m in runs), 1),
            worker_rss_with_children=any(m.children_seen for m in runs),
            comparable=wall >= SHORT_SECONDS and base_wall >= SHORT_SECONDS,
            note="; ".join(notes),
        ))
    return rows


def run_bench(
    config: EngineConfig,
    inputs: Sequence[str],
    worker_counts: Sequence[int],
    repeat: int = 1,
    plugins: Sequence[object] = (),
) -> list[BenchRow]:
    counts, added = with_baseline(worker_counts)
    measured = {workers: [measure_once(config, inputs, workers, plugins) for _ in range(max(1, repeat))]
                for workers in counts}
    return summarise(measured, added)


# ------------------------------------------------------------------ output
def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table with aligned columns (floats to 3 significant digits)."""
    cells = [[str(c) for c in columns]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def format_table(rows: Sequence[BenchRow]) -> str:
    """The table, then what its figures are: the median of how many runs, against what."""
    children = any(r.worker_rss_with_children for r in rows)
    worker_column = "worker + tesseract MB" if children else "worker MB"
    columns = ["workers", "wall s", "pages/s", "speed-up", "efficiency", "CPU util", "parent MB", worker_column]
    notes = any(r.note for r in rows)
    body = []
    for r in rows:
        cells: list[object] = [
            r.workers, r.wall_seconds, r.pages_per_second,
            f"{r.speedup:.2f}" if r.comparable else "–",
            f"{r.efficiency:.2f}" if r.comparable else "–",
            f"{r.cpu_utilisation:.2f}", f"{r.parent_rss_mb:.1f}",
            f"{r.worker_rss_mb:.1f}" + ("" if r.worker_rss_with_children or not children else " (no OCR seen)"),
        ]
        body.append([*cells, r.note] if notes else cells)
    runs = sorted({r.runs for r in rows})
    lines = [
        markdown_table([*columns, "note"] if notes else columns, body),
        "",
        f"wall s: median of {'/'.join(map(str, runs))} run{'s' if runs != [1] else ''} a row; workers started "
        "before the clock. speed-up: pages/s over the 1-worker run's; efficiency: speed-up ÷ workers.",
        "CPU util: CPU seconds of the parent, its workers and their children ÷ (wall × workers). "
        f"MB: peak RSS; {'a worker with its tesseract' if children else 'the largest worker'}.",
    ]
    if any(not r.comparable for r in rows):
        lines.append(f"–: a run under {SHORT_SECONDS:g} s is mostly start-up and output writing, "
                     "too short to compare; give more --pages.")
    return "\n".join(lines)


def save_json(rows: Sequence[BenchRow], path: Path, meta: dict[str, Any]) -> None:
    """The rows, with the machine they were measured on (``machine()``) and ``meta``."""
    document = {"meta": {**machine(), **meta}, "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


def save_plot(rows: Sequence[BenchRow], path: Path, title: str) -> None:
    """pages/s and efficiency against workers (needs ``pagemill[bench]``: matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r.workers)
    workers = [r.workers for r in rows]
    fig, left = plt.subplots(figsize=(6, 4))
    left.plot(workers, [r.pages_per_second for r in rows], "o-", color="tab:blue", label="pages/s")
    left.set_xlabel("workers")
    left.set_ylabel("pages/s", color="tab:blue")
    left.set_xticks(workers)
    left.set_ylim(bottom=0)
    right = left.twinx()
    right.plot(workers, [r.efficiency for r in rows], "s--", color="tab:orange", label="efficiency")
    right.set_ylabel("parallel efficiency (over 1 worker)", color="tab:orange")
    right.set_ylim(0, 1.1)
    if not all(r.comparable for r in rows):
        title += f"\nruns under {SHORT_SECONDS:g} s: too short to compare"
    left.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
