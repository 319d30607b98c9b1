"""What the benchmarks read of the engine's processes: RSS of each worker with its children, and
CPU seconds of the parent and every worker, including those that ended during a run."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

import psutil


@dataclass(frozen=True)
class TreeRss:
    """One worker's RSS in MB with that of its descendants (tesseract while it OCRs)."""

    own_mb: float
    children_mb: float
    children: int

    @property
    def total_mb(self) -> float:
        return self.own_mb + self.children_mb


def tree_rss(pids: Sequence[int]) -> dict[int, TreeRss]:
    """RSS of each process in ``pids`` and of its children (recursively). Each pid must descend
    from this process: one ``children(recursive=True)`` of this process reads /proc once, rather
    than once per worker."""
    sizes: dict[int, TreeRss] = {}
    try:
        descendants = psutil.Process().children(recursive=True)
    except psutil.Error:
        return sizes
    parent_of: dict[int, int] = {}
    rss: dict[int, float] = {}
    for process in descendants:
        try:
            parent_of[process.pid] = process.ppid()
            rss[process.pid] = process.memory_info().rss / 2**20
        except psutil.Error:
            continue
    wanted = set(pids)
    below: dict[int, list[int]] = {pid: [] for pid in wanted}
    for pid in rss:
        ancestor = parent_of.get(pid)
        while ancestor is not None and ancestor not in wanted:
            ancestor = parent_of.get(ancestor)
        if ancestor is not None:
            below[ancestor].append(pid)
    for pid in wanted:
        if pid in rss:
            sizes[pid] = TreeRss(rss[pid], sum(rss[c] for c in below[pid]), len(below[pid]))
    return sizes


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
