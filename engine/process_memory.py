"""The memory of a process tree: a worker's RSS with that of the programs it started (tesseract
runs as a child of the worker while it OCRs). Read by the pool (engine.pool) for the scaling
policy and by the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


__all__ = ["TreeRss", "tree_rss"]
