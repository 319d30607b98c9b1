"""The priority queue of a run and its retry timers (parent side).

Order of work (``PageQueue``):

1. By priority class: urgent, high, normal, low.
2. Within a class, ingest tasks first (a document's size is known only once ingested), then pages
   of larger documents first, so the tail of a run is short; then first come (first pushed),
   first served. (What is not queued yet cannot be ordered here: a folder's files are read larger
   first, ``engine.discovery.FOLDER_WINDOW`` at a time.)
3. Aging, bounded: a task of a lower class that has waited ``gap × aging_seconds`` (``gap``: how
   many classes it is below the best class waiting) is *aged*. Aged tasks, the most overdue
   first, get at most one pop in ``aged_share`` (4) while better work waits; the other pops go
   to the best class. So better work is never held back by more than one aged task at a time
   (an urgent page still starts within about one page-time), and a low page is served within
   ``gap × aging_seconds`` plus ``aged_share`` pops for each aged task older than it, however
   many urgent pages keep arriving.
4. A task keeps its age: its wait counts from its first push, so a task given back by a worker
   or retried is not sent to the back of its class. A task that was popped as aged and comes
   back (its worker was retired, or died before starting it) is owed that pop: the next pop may
   be aged again, however few pops of better work came since. The dispatcher never takes an
   aged task back for better work (engine.dispatch).

Every push is an entry of its own: a task pushed again (a retry, a task given back by a worker
that died or was asked to give it back) is a new entry, and the entry it had before was used up
when it was popped, so a task is popped exactly once per push. Entries leave the per-class heap
and the per-class heap by age lazily (a popped entry is marked and skipped), and a class whose
structures hold more dead entries than live ones is compacted, so memory stays proportional to
the queue.

Retries wait in a timer heap with a not-before time (``RetryTimers``); no worker ever sleeps
for a backoff.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

N_CLASSES = 4
AGED_SHARE = 4  # while better work waits, aged tasks get at most one pop in this many
_COMPACT_SLACK = 256  # dead entries a class may carry beyond its live ones before it is compacted


@dataclass
class Task:
    """A unit of work in the parent: ingest a document, or process a page."""

    seq: int
    kind: str  # "ingest" or "page"
    payload: Any  # Document or PageTask
    rank: int  # 0 urgent .. 3 low
    size: int  # pages of its document (0 when not known yet)
    enqueued_at: float | None = None  # clock time of its first push: its age counts from there
    attempts: int = 0  # attempts that failed so far
    held_failures: int = 0  # failures charged to an open circuit breaker, not to the task
    job: int = 0
    cost: float = math.inf  # expected seconds when known to be short (engine.dispatch), else inf
    blocked: int = 0  # plugin calls (bits of engine.gates) that must fail fast: their breaker is open
    trial: int = 0  # plugin calls this task may make although their breaker is half-open
    aged: bool = False  # its last pop was an aged pick (it is not taken back for better work)
    lost_in: tuple[str, str] | None = None  # (plugin, hook) running when a worker last died or hung with it

    def where(self) -> str:
        return self.payload.path if self.kind == "ingest" else self.payload.where()


class _Entry:
    """One push of a task: alive until it is popped or removed."""

    __slots__ = ("task", "alive")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.alive = True


class PageQueue:
    """Tasks ready to run, by priority class with bounded aging and large-documents-first."""

    def __init__(self, aging_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 aged_share: int = AGED_SHARE) -> None:
        if aged_share < 1:
            raise ValueError(f"aged_share must be at least 1, not {aged_share}")
        self.aging_seconds = aging_seconds
        self.clock = clock
        self.aged_share = aged_share
        self._heaps: list[list[tuple[int, float, int, _Entry]]] = [[] for _ in range(N_CLASSES)]
        self._by_age: list[list[tuple[float, int, _Entry]]] = [[] for _ in range(N_CLASSES)]  # by age
        self._live = [0] * N_CLASSES
        self._size = 0
        self._pushes = itertools.count()
        self._since_aged = aged_share  # pops of better work since the last aged pop
        self._peeked: tuple[int, _Entry, bool] | None = None  # what pop() takes, until the queue changes

    def __len__(self) -> int:
        return self._size

    def best_rank(self) -> int:
        """The best class with a task waiting (N_CLASSES when empty)."""
        return next((rank for rank in range(N_CLASSES) if self._live[rank]), N_CLASSES)

    def counts(self) -> list[int]:
        return list(self._live)

    def push(self, task: Task) -> None:
        if task.enqueued_at is None:
            task.enqueued_at = self.clock()
        if task.aged:  # an aged pick that came back: owed its pop
            self._since_aged = max(self._since_aged, self.aged_share)
        entry = _Entry(task)
        order = -(10**9) if task.kind == "ingest" else -task.size
        push = next(self._pushes)
        heapq.heappush(self._heaps[task.rank], (order, task.enqueued_at, push, entry))
        heapq.heappush(self._by_age[task.rank], (task.enqueued_at, push, entry))
        self._live[task.rank] += 1
        self._size += 1
        self._peeked = None

    def peek(self) -> Task | None:
        """The task ``pop()`` would return now, left in the queue."""
        if not self._size:
            return None
        self._peeked = self._select()
        return self._peeked[1].task

    def pop(self) -> Task | None:
        if not self._size:
            return None
        rank, entry, aged = self._peeked or self._select()  # exactly the task peeked, if any
        self._peeked = None
        if aged:
            heapq.heappop(self._by_age[rank])
            self._since_aged = 0
        else:
            heapq.heappop(self._heaps[rank])
            self._since_aged += 1
        entry.alive = False
        entry.task.aged = aged
        self._live[rank] -= 1
        self._size -= 1
        self._compact_if_sparse(rank)
        return entry.task

    def _select(self) -> tuple[int, _Entry, bool]:
        """(class, entry, whether it is an aged pick) of the next pop; the queue is not empty."""
        best = self.best_rank()
        if self._since_aged >= self.aged_share - 1:
            aged = self._most_overdue(best)
            if aged is not None:
                return aged, self._oldest(aged), True
        return best, self._heap_top(best), False

    def _most_overdue(self, best: int) -> int | None:
        """The lower class whose oldest task has waited longest past ``rank gap × aging``."""
        now = self.clock()
        chosen, chosen_excess = None, 0.0
        for rank in range(best + 1, N_CLASSES):
            if not self._live[rank]:
                continue
            oldest = self._oldest(rank).task
            waited = now - oldest.enqueued_at if oldest.enqueued_at is not None else 0.0
            excess = waited - (rank - best) * self.aging_seconds
            if excess >= 0 and (chosen is None or excess > chosen_excess):
                chosen, chosen_excess = rank, excess
        return chosen

    def _heap_top(self, rank: int) -> _Entry:
        heap = self._heaps[rank]
        while not heap[0][-1].alive:
            heapq.heappop(heap)
        return heap[0][-1]

    def _oldest(self, rank: int) -> _Entry:
        by_age = self._by_age[rank]
        while not by_age[0][2].alive:
            heapq.heappop(by_age)
        return by_age[0][2]

    def _compact_if_sparse(self, rank: int) -> None:
        live = self._live[rank]
        if len(self._heaps[rank]) > 2 * live + _COMPACT_SLACK or len(self._by_age[rank]) > 2 * live + _COMPACT_SLACK:
            self._rebuild(rank)

    def _rebuild(self, rank: int) -> None:
        self._heaps[rank] = [item for item in self._heaps[rank] if item[-1].alive]
        heapq.heapify(self._heaps[rank])
        self._by_age[rank] = [item for item in self._by_age[rank] if item[2].alive]
        heapq.heapify(self._by_age[rank])

    def remove_where(self, doomed: Callable[[Task], bool]) -> list[Task]:
        """Take out every waiting task for which ``doomed`` is true (a cancelled job's)."""
        removed: list[Task] = []
        self._peeked = None
        for rank in range(N_CLASSES):
            for _, _, entry in self._by_age[rank]:
                if entry.alive and doomed(entry.task):
                    entry.alive = False
                    removed.append(entry.task)
                    self._live[rank] -= 1
                    self._size -= 1
            self._rebuild(rank)
        return removed

    def drain(self) -> Iterator[Task]:
        while self._size:
            task = self.pop()
            if task is None:
                return
            yield task


class RetryTimers:
    """Tasks waiting for their not-before time."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Task]] = []
        self._adds = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, task: Task, not_before: float) -> None:
        heapq.heappush(self._heap, (not_before, next(self._adds), task))

    def due(self, now: float) -> list[Task]:
        ready = []
        while self._heap and self._heap[0][0] <= now:
            ready.append(heapq.heappop(self._heap)[2])
        return ready

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def remove_where(self, doomed: Callable[[Task], bool]) -> list[Task]:
        removed = [item[2] for item in self._heap if doomed(item[2])]
        self._heap = [item for item in self._heap if not doomed(item[2])]
        heapq.heapify(self._heap)
        return removed

    def drain(self) -> list[Task]:
        tasks = [item[2] for item in self._heap]
        self._heap.clear()
        return tasks


_seq = itertools.count(1)


def next_seq() -> int:
    return next(_seq)
