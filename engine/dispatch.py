"""Which queued tasks go to which worker, and when a waiting task is taken back (parent side).

A worker holds the task it runs and one task waiting beside it, so it never idles between tasks
while priorities stay responsive. Tasks known to be short may share that waiting place: a worker
holds more only while every task it holds is of a kind whose recent cost (``CostBook``) is below
``WAIT_SECONDS`` and their expected seconds together stay below it (text layers and stand-ins
would otherwise spend more time in IPC than in work). The tasks picked for a worker in one round
go in one message; the worker answers each as it finishes, so nothing is lost with a batch.

Better work takes the waiting place: when a queued task outranks a task waiting on a worker and
no worker has room, the waiting task is asked back (``WorkerPool.revoke``: a task the worker has
already started is left to finish) and the better one is sent in its place, to run as soon as
the worker's current task ends. A task that was given its place because it had aged (engine.pagequeue)
keeps it: taking it back would put it behind the better work it was let through. Nothing is queued behind an ingest that outranks it: the pages
that ingest yields take that place.
"""

from __future__ import annotations

import math
from typing import Any

from engine.gates import BreakerGates
from engine.pagequeue import N_CLASSES, PageQueue, Task

WAIT_SECONDS = 0.02  # expected seconds of short tasks a worker may hold
KNOWN_AFTER = 3  # results of a kind of task before its cost counts as known
MAX_HELD = 32  # tasks a worker may hold at most, however short


class CostBook:
    """Recent seconds per task, by kind of task: a page's kind and whether it has a text layer.

    A kind is *short* when its moving average and its latest sample are both under
    ``WAIT_SECONDS``; ``expected`` is then that average, else infinity (unknown or long).
    ``page_seconds`` is the moving average over all pages (for the scaling policy).
    """

    def __init__(self) -> None:
        self._stats: dict[tuple[Any, ...], list[float]] = {}  # key -> [average, latest, samples]
        self.page_seconds = 0.0

    @staticmethod
    def key(task: Task) -> tuple[Any, ...]:
        if task.kind != "page":
            return (task.kind,)
        return (task.kind, getattr(task.payload, "kind", ""), getattr(task.payload, "has_text_layer", False))

    def record(self, task: Task, seconds: float) -> None:
        stats = self._stats.get(self.key(task))
        if stats is None:
            self._stats[self.key(task)] = [seconds, seconds, 1]
        else:
            stats[0] = 0.8 * stats[0] + 0.2 * seconds
            stats[1] = seconds
            stats[2] += 1
        if task.kind == "page":
            self.page_seconds = seconds if not self.page_seconds else 0.8 * self.page_seconds + 0.2 * seconds

    def expected(self, task: Task) -> float:
        stats = self._stats.get(self.key(task))
        if stats is None or stats[2] < KNOWN_AFTER or stats[0] >= WAIT_SECONDS or stats[1] >= WAIT_SECONDS:
            return math.inf
        return stats[0]


class Dispatcher:
    """Fills the workers' free places from the queue and takes waiting places for better work."""

    def __init__(self, queue: PageQueue, pool: Any, gates: BreakerGates, costs: CostBook) -> None:
        self.queue = queue
        self.pool = pool
        self.gates = gates
        self.costs = costs
        self._sent = 0
        self._nothing_to_take: tuple[int, int] | None = None  # (best class, sends) of a fruitless look

    def dispatch(self) -> None:
        if not len(self.queue):
            return
        free = self.pool.free_capacity()
        if not free and getattr(self.pool, "can_revoke", False) and self._take_places():
            free = self.pool.free_capacity()
        precise = self.gates.precise
        blocked = self.gates.blocked_mask() if precise and self.gates.board.breakers else 0
        for worker in free:
            tasks = self._tasks_for(worker, blocked, precise)
            if tasks:
                self._sent += 1
                self.pool.send_batch(worker, tasks)
            if not len(self.queue):
                return

    def _tasks_for(self, worker: Any, blocked: int, precise: bool) -> list[Task]:
        queue, pool = self.queue, self.pool
        room = pool.tasks_before_recycle(worker)
        held = len(worker.in_flight)
        long_tasks = getattr(worker, "long_tasks", 0)
        short_seconds = getattr(worker, "short_seconds", 0.0)
        ingest_rank = min((t.rank for t in worker.in_flight if t.kind == "ingest"), default=N_CLASSES)
        tasks: list[Task] = []
        while room > 0 and len(queue):
            if held:  # a waiting place
                task = queue.peek()
                assert task is not None
                if task.rank > ingest_rank:
                    break  # the pages of the ingest it would wait behind outrank it
                if held >= pool.depth:
                    cost = self.costs.expected(task) if getattr(pool, "time_bounded", False) else math.inf
                    if cost == math.inf or long_tasks or short_seconds + cost > WAIT_SECONDS or held >= MAX_HELD:
                        break
            if not precise and not self.gates.board.allow_page():
                break  # an executor that cannot gate single calls: every breaker must allow the page
            task = queue.pop()
            assert task is not None
            task.cost = self.costs.expected(task)
            task.blocked = blocked
            tasks.append(task)
            held += 1
            room -= 1
            if task.cost == math.inf:
                long_tasks += 1
            else:
                short_seconds += task.cost
            if task.kind == "ingest":
                ingest_rank = min(ingest_rank, task.rank)
        return tasks

    def _take_places(self) -> bool:
        """Ask back waiting tasks that queued work outranks (no worker has room); True if any."""
        best = self.queue.best_rank()
        if self._nothing_to_take == (best, self._sent) or not any(self.pool.held_by_rank[best + 1:]):
            return False
        candidates = []
        for worker in self.pool.workers.values():
            if worker.retiring or not worker.ready:
                continue
            worse = [task for task in worker.in_flight[1:] if task.rank > best and not task.aged]
            if worse:
                candidates.append((max(task.rank for task in worse), worker, worse))
        wanted = self.queue.counts()[best]
        taken = 0
        for _, worker, worse in sorted(candidates, key=lambda c: -c[0]):
            if taken >= wanted:
                break
            taken += 1 if self.pool.revoke(worker, worse) else 0
        if not taken:
            self._nothing_to_take = (best, self._sent)
        return bool(taken)


__all__ = ["CostBook", "Dispatcher", "KNOWN_AFTER", "MAX_HELD", "WAIT_SECONDS"]
