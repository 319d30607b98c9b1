"""The priority queue of a run and its retry timers (parent side).

Order of work (``PageQueue``):

1. By priority class: urgent, high, normal, low.
2. Within a class, ingest tasks first (a document's size is known only once ingested), then pages
   of larger documents first, so the tail of a run is short; then first come, first served.
3. Aging: a task of a lower class that has waited ``gap × aging_seconds`` (``gap``: how many
   classes it is below the best class waiting) is served next, oldest first. So a low page is
   served within ``3 × aging_seconds`` plus one page-time however many urgent pages keep arriving.

Retries wait in a timer heap with a not-before time (``RetryTimers``); no worker ever sleeps
for a backoff.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

N_CLASSES = 4


@dataclass
class Task:
    """A unit of work in the parent: ingest a document, or process a page."""

    seq: int
    kind: str  # "ingest" or "page"
    payload: Any  # Document or PageTask
    rank: int  # 0 urgent .. 3 low
    size: int  # pages of its document (0 when not known yet)
    enqueued_at: float = 0.0
    attempts: int = 0  # attempts that failed so far
    held_failures: int = 0  # failures charged to an open circuit breaker, not to the task
    job: int = 0

    def where(self) -> str:
        return self.payload.path if self.kind == "ingest" else self.payload.where()


class PageQueue:
    """Tasks ready to run, by priority class with aging and large-documents-first."""

    def __init__(self, aging_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.aging_seconds = aging_seconds
        self.clock = clock
        self._heaps: list[list[tuple[int, int, Task]]] = [[] for _ in range(N_CLASSES)]
        self._fifos: list[deque[Task]] = [deque() for _ in range(N_CLASSES)]
        self._taken: set[int] = set()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def best_rank(self) -> int:
        """The best class with a task waiting (N_CLASSES when empty)."""
        return next((rank for rank in range(N_CLASSES) if self._heaps[rank]), N_CLASSES)

    def counts(self) -> list[int]:
        return [len(h) for h in self._heaps]

    def push(self, task: Task) -> None:
        task.enqueued_at = self.clock()
        order = -(10**9) if task.kind == "ingest" else -task.size
        heapq.heappush(self._heaps[task.rank], (order, task.seq, task))
        self._fifos[task.rank].append(task)
        self._size += 1

    def _oldest(self, rank: int) -> Task | None:
        fifo = self._fifos[rank]
        while fifo and fifo[0].seq in self._taken:
            self._taken.discard(fifo.popleft().seq)
        return fifo[0] if fifo else None

    def pop(self) -> Task | None:
        if not self._size:
            return None
        nonempty = [rank for rank in range(N_CLASSES) if self._heaps[rank]]
        best = nonempty[0]
        aged = self._most_overdue(nonempty, best)
        if aged is not None:  # a lower class waited past its bound: serve its oldest task
            task = self._oldest(aged)
            assert task is not None
            self._fifos[aged].popleft()
            self._remove_from_heap(aged, task)
        else:
            task = self._pop_heap(best)
        self._size -= 1
        return task

    def _most_overdue(self, nonempty: list[int], best: int) -> int | None:
        """The lower class whose oldest task has waited longest past ``rank gap × aging``."""
        now = self.clock()
        chosen, chosen_excess = None, 0.0
        for rank in nonempty[1:]:
            oldest = self._oldest(rank)
            if oldest is None:
                continue
            excess = (now - oldest.enqueued_at) - (rank - best) * self.aging_seconds
            if excess >= 0 and (chosen is None or excess > chosen_excess):
                chosen, chosen_excess = rank, excess
        return chosen

    def _pop_heap(self, rank: int) -> Task:
        heap = self._heaps[rank]
        _, _, task = heapq.heappop(heap)
        self._taken.add(task.seq)  # the FIFO drops it lazily ...
        self._oldest(rank)  # ... from its front, so neither grows past the queue
        return task

    def _remove_from_heap(self, rank: int, task: Task) -> None:
        heap = self._heaps[rank]
        for index, (_, seq, _) in enumerate(heap):
            if seq == task.seq:
                heap[index] = heap[-1]
                heap.pop()
                heapq.heapify(heap)
                return

    def remove_where(self, doomed: Callable[[Task], bool]) -> list[Task]:
        """Take out every waiting task for which ``doomed`` is true (a cancelled job's)."""
        removed: list[Task] = []
        for rank in range(N_CLASSES):
            keep = []
            for entry in self._heaps[rank]:
                if doomed(entry[2]):
                    removed.append(entry[2])
                else:
                    keep.append(entry)
            heapq.heapify(keep)
            self._heaps[rank] = keep
            alive = {entry[1] for entry in keep}
            self._fifos[rank] = deque(t for t in self._fifos[rank] if t.seq in alive)
        self._taken.clear()
        self._size -= len(removed)
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

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, task: Task, not_before: float) -> None:
        heapq.heappush(self._heap, (not_before, task.seq, task))

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
