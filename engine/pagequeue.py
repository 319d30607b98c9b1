"""The priority queue of a run and its retry timers (parent side).

Order of work (``PageQueue``):

1. By priority class: urgent, high, normal, low.
2. Within a class, ingest tasks first (a document's size is known only once ingested), then pages
   of larger documents first, so the tail of a run is short; then first come, first served.
3. Aging: a class's effective rank improves by one for every ``aging_seconds`` its oldest page has
   waited, so a low page is served within about ``3 × aging_seconds`` however many high pages keep
   arriving; a class that wins by aging serves its oldest page.

Retries wait in a timer heap with a not-before time (``RetryTimers``); no worker ever sleeps
for a backoff.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from typing import Callable, Iterator

from engine.pool import Task

N_CLASSES = 4


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

    def _effective_rank(self, rank: int, now: float) -> float:
        oldest = self._oldest(rank)
        if oldest is None:
            return float("inf")
        waited = now - oldest.enqueued_at
        return rank - int(waited // self.aging_seconds)

    def pop(self) -> Task | None:
        if not self._size:
            return None
        now = self.clock()
        ranks = [(self._effective_rank(rank, now), rank) for rank in range(N_CLASSES)]
        effective, rank = min(ranks)
        if effective == float("inf"):
            return None
        if effective < rank and min(r for e, r in ranks if e != float("inf")) < rank:
            task = self._oldest(rank)  # won by aging: serve its oldest page
            assert task is not None
            self._fifos[rank].popleft()
            self._remove_from_heap(rank, task)
        else:
            task = self._pop_heap(rank)
        self._size -= 1
        return task

    def _pop_heap(self, rank: int) -> Task:
        heap = self._heaps[rank]
        _, _, task = heapq.heappop(heap)
        self._taken.add(task.seq)  # the FIFO drops it lazily
        return task

    def _remove_from_heap(self, rank: int, task: Task) -> None:
        heap = self._heaps[rank]
        for index, (_, seq, _) in enumerate(heap):
            if seq == task.seq:
                heap[index] = heap[-1]
                heap.pop()
                heapq.heapify(heap)
                return

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

    def drain(self) -> list[Task]:
        tasks = [item[2] for item in self._heap]
        self._heap.clear()
        return tasks


_seq = itertools.count(1)


def next_seq() -> int:
    return next(_seq)
