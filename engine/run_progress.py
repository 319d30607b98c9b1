"""The API's progress snapshot: :class:`RunProgress`, made on the run's thread, read from any.

The run's thread makes a snapshot every ``PUBLISH_EVERY`` seconds (:meth:`ProgressPublisher.tick`,
after a step of the run) and keeps a reference to the latest; ``Engine.progress()`` returns that
reference. Other threads never read the scheduler, the pool or the session themselves, which the
run's thread changes as it goes (workers come and go, documents are read).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from engine.progress import ProgressSnapshot
from engine.rates import RateWindow, StageRate

if TYPE_CHECKING:
    from engine.runner import RunSession

PUBLISH_EVERY = 0.1  # seconds between two snapshots of a run (and on_progress calls)


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands, at one moment; nothing in it changes afterwards.

    ``counters`` are the workers' shared-memory counters of this run: page attempts started,
    finished and failed *in the workers*, some not committed yet. ``pages_done`` counts pages
    committed to the ledger (this run's and those done by earlier runs, ``pages_skipped``). The
    rates are over the last 10 s, as on the progress display: ``pages_per_second`` of pages
    committed (None until the window spans some time), ``eta_seconds`` for the pages known (None
    while documents are still being found, or without a rate), ``stages`` each stage's calls per
    second and share of the busy time.
    """

    counters: ProgressSnapshot
    pages_done: int  # committed in this run, plus pages done by earlier runs
    pages_known: int  # pages of the documents ingested so far
    pages_skipped: int
    workers_busy: int
    workers_target: int
    workers_memory_mb: float
    discovering: bool = False  # documents still being found or ingested: pages_known may grow
    pages_per_second: float | None = None
    eta_seconds: float | None = None
    stages: tuple[StageRate, ...] = ()

    @property
    def fraction(self) -> float | None:
        """Pages done of the pages known, 0..1; None while documents are still being found."""
        if self.discovering or not self.pages_known:
            return None
        return min(1.0, self.pages_done / self.pages_known)


class ProgressPublisher:
    """The latest snapshot of one engine's run, and the rate window behind it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rates = RateWindow()
        self._last = -math.inf
        self._latest: tuple[Any, RunProgress] | None = None  # (session, snapshot)

    def start(self, session: RunSession, pool: Any) -> None:
        """A new run: a first snapshot (nothing done yet), before the run's thread starts."""
        self._rates = RateWindow()
        self._last = -math.inf
        board = pool.board.snapshot()
        self._latest = (session, RunProgress(board.minus(board), 0, 0, 0, 0, pool.target, 0.0, True))

    def latest(self, session: RunSession | None) -> RunProgress | None:
        """The latest snapshot of ``session``; None for another run, or none."""
        latest = self._latest
        if session is None or latest is None or latest[0] is not session:
            return None
        return latest[1]

    def tick(self, session: RunSession, force: bool = False) -> RunProgress | None:
        """On the run's thread: a new snapshot when PUBLISH_EVERY has passed (or ``force``),
        published and returned; None otherwise."""
        now = self._clock()
        if not force and now - self._last < PUBLISH_EVERY:
            return None
        self._last = now
        progress = self._snapshot(session, now)
        self._latest = (session, progress)  # one reference: a reader gets the old one or the new
        return progress

    def _snapshot(self, session: RunSession, now: float) -> RunProgress:
        scheduler = session.scheduler
        pool = scheduler.pool
        counters = scheduler.run_counters()
        rates = self._rates.add(now, session.pages_done, counters)  # a resume's skipped pages are no speed
        done = session.pages_done + scheduler.pages_skipped
        discovering = session.discovering
        return RunProgress(
            counters=counters,
            pages_done=done,
            pages_known=scheduler.pages_known,
            pages_skipped=scheduler.pages_skipped,
            workers_busy=pool.busy_count(),
            workers_target=pool.target,
            workers_memory_mb=round(sum(scheduler.worker_rss_mb.values()), 1),
            discovering=discovering,
            pages_per_second=rates.pages_per_second,
            eta_seconds=None if discovering else rates.eta_seconds(done, scheduler.pages_known),
            stages=rates.stages,
        )


__all__ = ["PUBLISH_EVERY", "ProgressPublisher", "RunProgress"]
