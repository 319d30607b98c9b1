"""What the pool reads of its workers without asking them (engine.pool's mixin): the task and the
plugin call each has in hand (its progress slot), tasks past their deadline, workers that do not
start, and memory (a worker's RSS with the programs it started; recycling past the limit)."""

from __future__ import annotations

import time
from typing import Any, Callable

from loguru import logger

from engine.pagequeue import Task
from engine.process_memory import tree_rss
from engine.workerhandle import WorkerHandle


class WorkerChecks:
    """Reading workers' progress slots and memory, for :class:`engine.pool.WorkerPool`."""

    workers: dict[int, WorkerHandle]
    board: Any
    retire: Callable[[WorkerHandle, str], None]
    _rss_warned: bool

    def overdue(self, timeout: float) -> list[tuple[WorkerHandle, Task, float]]:
        """Workers whose running task has run past ``timeout`` seconds."""
        now_ns = time.monotonic_ns()
        found = []
        for worker in self.workers.values():
            seq, started_ns = self.board.in_hand(worker.slot)
            if seq < 0 or not worker.held:
                continue
            elapsed = (now_ns - started_ns) / 1e9
            if elapsed > timeout:
                running = self._task_of(worker, seq)
                if running is not None:
                    found.append((worker, running, elapsed))
        return found

    def _task_of(self, worker: WorkerHandle, seq: int) -> Task | None:
        return worker.revoking.get(seq) or next((t for t in worker.in_flight if t.seq == seq), None)

    def running_task(self, worker: WorkerHandle) -> Task | None:
        """The task the worker has (or, once dead, had) in hand, per its progress slot."""
        seq = worker.final_in_hand if worker.slot not in self.workers else self.board.in_hand(worker.slot)[0]
        return self._task_of(worker, seq) if seq >= 0 else None

    def plugin_in_hand(self, worker: WorkerHandle) -> int:
        """The index of the plugin call the worker is (or, once dead, was) in, -1 when none."""
        return worker.final_plugin if worker.slot not in self.workers else self.board.plugin_now(worker.slot)

    def not_started(self, seconds: float) -> list[WorkerHandle]:
        """Workers that have not said ready ``seconds`` after they started (and are not being ended)."""
        now = time.monotonic()
        return [w for w in self.workers.values()
                if not w.ready and not w.fault and not w.lost and now - w.started_at > seconds]

    def check_memory(self, limit_mb: float) -> dict[int, float]:
        """RSS in MB of each worker with the programs it started (what a worker costs the machine,
        for the scaling policy); a worker whose own RSS is past ``limit_mb`` and that has done a
        task since it started is recycled (its replacement starts at once, it stops after its task)."""
        workers = [w for w in list(self.workers.values()) if isinstance(w.pid, int)]
        trees = tree_rss([w.pid for w in workers])
        sizes: dict[int, float] = {}
        for worker in workers:
            tree = trees.get(worker.pid)
            if tree is None:
                continue
            sizes[worker.slot], rss = tree.total_mb, tree.own_mb
            if not limit_mb or rss <= limit_mb or worker.retiring or not worker.ready:
                continue
            if worker.tasks_done == 0:  # a fresh worker: recycling it would only start another
                if not self._rss_warned:
                    self._rss_warned = True
                    logger.warning("--max-worker-rss {:.0f} MB is below a fresh worker's {:.0f} MB: "
                                   "each worker is recycled after its first task", limit_mb, rss)
                continue
            self.retire(worker, f"recycled: RSS {rss:.0f} MB > {limit_mb:.0f} MB")
        return sizes


__all__ = ["WorkerChecks"]
