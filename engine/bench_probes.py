"""What the benchmarks read of the engine's processes: RSS of each worker with its children, and
CPU seconds of the parent and every worker, including those that ended during a run."""

from __future__ import annotations

import threading
from typing import Any

import psutil

from engine.process_memory import TreeRss, tree_rss


def worker_pids(engine: Any) -> list[int]:
    pool = engine._pool
    if pool is None:
        return []
    return [w.pid for w in list(pool.workers.values()) if getattr(w, "pid", None)]


class RssSampler:
    """Samples, in a thread, the parent's RSS and each worker's RSS with its children.

    ``peak`` is the largest worker tree seen; ``peak_during_children`` the largest seen while that
    worker had a child (for the built-in stages: while tesseract ran)."""

    def __init__(self, engine: Any, interval: float = 0.2) -> None:
        self.engine = engine
        self.interval = interval
        self.parent_mb = 0.0
        self.peak: TreeRss | None = None
        self.peak_during_children: TreeRss | None = None
        self._me = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pagemill-bench-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        self.parent_mb = max(self.parent_mb, self._me.memory_info().rss / 2**20)
        for size in tree_rss(worker_pids(self.engine)).values():
            if self.peak is None or size.total_mb > self.peak.total_mb:
                self.peak = size
            if size.children and (self.peak_during_children is None
                                  or size.total_mb > self.peak_during_children.total_mb):
                self.peak_during_children = size


def cpu_seconds(engine: Any) -> float:
    """CPU seconds so far of this process, of its live workers with their children, and of every
    worker that has ended: those are counted in their reaper's children times (the forkserver's,
    or this process's with fork or spawn), so a worker recycled between two readings is not lost."""
    me = psutil.Process()
    own = me.cpu_times()
    total = own.user + own.system
    reapers: set[int] = set()
    for pid in worker_pids(engine):
        try:
            worker = psutil.Process(pid)
            times = worker.cpu_times()
            reapers.add(worker.ppid())
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    for pid in reapers:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.children_user + times.children_system
    return total
