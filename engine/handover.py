"""The hand-over of a process() loop joined to the background jobs: committed pages on their way
from the run's thread to the thread of the loop.

It holds a few pages at most. While it is full the run's thread waits, so a slow loop slows the
run instead of filling memory; it never waits for a loop whose thread is itself waiting on the
engine (``Job.result()``, the take-back of another loop), which could not go on. When the loop
leaves, the pages still held are handed back to be taken out of the ledger (the next run redoes
them) and a run's thread waiting on it is released at once.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager
from typing import Iterator

from engine.records import PageResult

HANDOVER_PAGES = 16  # pages held for a loop at most: enough to keep the run busy, little memory
WAIT_STEP = 0.05  # seconds between looks while the hand-over is full
GET_STEP = 0.5  # seconds between looks while it is empty: Ctrl-C reaches a waiting loop in time


class WaitingThreads:
    """The threads waiting on an engine's jobs (a hand-over never waits for their loops)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[int, int] = {}

    @contextmanager
    def waiting(self) -> Iterator[None]:
        ident = threading.get_ident()
        with self._lock:
            self._counts[ident] = self._counts.get(ident, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._counts[ident] -= 1
                if not self._counts[ident]:
                    del self._counts[ident]

    def __contains__(self, ident: object) -> bool:
        return ident in self._counts


class Handover:
    """At most ``size`` committed pages for one loop; see the module docstring."""

    def __init__(self, waiting: WaitingThreads, size: int = HANDOVER_PAGES) -> None:
        self.size = size
        self._waiting = waiting
        self._pages: deque[PageResult] = deque()
        self._changed = threading.Condition()
        self._ended = False  # no page will come
        self._left = False  # the loop is gone: nothing more is taken
        self.stop_asked = False  # another thread asked the loop to end (Engine.close)
        self.consumer: int | None = None  # the thread of the loop
        self.peak = 0  # the most pages it held at once

    def __len__(self) -> int:
        return len(self._pages)

    def put(self, result: PageResult) -> bool:
        """Hand a page on (the run's thread); False when the loop has left and it was not taken."""
        with self._changed:
            while len(self._pages) >= self.size and not self._left and self.consumer not in self._waiting:
                self._changed.wait(WAIT_STEP)
            if self._left:
                return False
            self._pages.append(result)
            self.peak = max(self.peak, len(self._pages))
            self._changed.notify_all()
            return True

    def get(self) -> PageResult | None:
        """The next page (the loop's thread), or None once no page will come or the loop must end."""
        with self._changed:
            self.consumer = threading.get_ident()
            while not self._pages and not self._ended and not self.stop_asked:
                self._changed.wait(GET_STEP)
            if self.stop_asked or not self._pages:
                return None
            result = self._pages.popleft()
            self._changed.notify_all()
            return result

    def replace(self, result: PageResult) -> bool:
        """Put a changed page in place of the one of its key still held; False when none is."""
        with self._changed:
            for index, held in enumerate(self._pages):
                if held.key == result.key:
                    self._pages[index] = result
                    return True
            return False

    def end(self) -> None:
        """No more pages: the loop ends once it has taken those held."""
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def stop(self) -> None:
        """Ask the loop to end at its next page, from another thread."""
        with self._changed:
            self.stop_asked = True
            self._changed.notify_all()

    def leave(self) -> list[PageResult]:
        """The loop is gone: the pages it did not take, and a run's thread waiting is released."""
        with self._changed:
            self._left = True
            left = list(self._pages)
            self._pages.clear()
            self._changed.notify_all()
            return left


__all__ = ["HANDOVER_PAGES", "Handover", "WaitingThreads"]
