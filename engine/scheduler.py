"""The dispatch loop (parent side): queue → workers → outcomes, with retries, deadlines,
crashes, circuit breakers, adaptive scaling and cancellation.

``Scheduler.run()`` is a generator of events (:class:`DocumentOpened`, :class:`DocumentFailed`,
:class:`AttemptFailed`, :class:`PageFinished`, :class:`Tick`). It never runs a stage and never
touches the ledger: the caller (engine.runner) commits what it yields. Every task it takes ends
in exactly one final event, or stays unfinished when the run is cancelled (and is done on resume).

Which task goes to which worker is engine.dispatch; what an answer, a failure, a timeout or a
dead worker leads to is engine.outcomes.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from loguru import logger

from engine.config import EngineConfig
from engine.dispatch import CostBook, Dispatcher
from engine.events import (
    AttemptFailed,
    DocumentFailed,
    DocumentOpened,
    Event,
    Feed,
    PageFinished,
    Tick,
)
from engine.gates import BreakerGates
from engine.outcomes import Outcomes
from engine.pagequeue import PageQueue, RetryTimers, Task, next_seq
from engine.pool import WorkerPool
from engine.progress import ProgressSnapshot
from engine.records import PRIORITY_RANKS, Document, ErrorInfo
from engine.retry import BreakerBoard, RetryPolicy
from engine.scaling import (
    ResourceProbe,
    ScalingInputs,
    ScalingLimits,
    ScalingState,
    decide_worker_count,
)

LOOKAHEAD = 2  # tasks of a lower class kept waiting in the queue while better work fills it

__all__ = ["AttemptFailed", "DocumentFailed", "DocumentOpened", "PageFinished", "Scheduler", "Tick"]


class Scheduler(Outcomes):
    """Runs tasks on a WorkerPool in priority order until every submitted document is done."""

    def __init__(
        self,
        config: EngineConfig,
        pool: WorkerPool,
        is_done: Callable[[tuple[str, int]], bool] = lambda key: False,
        document_done: Callable[[Document], bool] = lambda doc: False,
        probe: Any = None,
        clock: Callable[[], float] = time.monotonic,
        aging_seconds: float = 30.0,
        scale_every: float = 1.0,
    ) -> None:
        self.config = config
        self.pool = pool
        self.is_done = is_done
        self.document_done = document_done
        self.clock = clock
        self.queue = PageQueue(aging_seconds=aging_seconds, clock=clock)
        self.timers = RetryTimers()
        self.policy = RetryPolicy.from_config(config)
        self.breakers = BreakerBoard(config.breaker_threshold, config.breaker_reset_seconds, clock=clock,
                                     give_up_seconds=config.breaker_give_up)
        self.gates = BreakerGates(self.breakers)
        if getattr(pool, "call_table", None):  # workers left ready by an earlier run of the same pool
            self.gates.learn(pool.call_table)
        self.costs = CostBook()
        self.dispatcher = Dispatcher(self.queue, pool, self.gates, self.costs)
        self.probe = probe or getattr(pool, "probe", None) or ResourceProbe()  # an executor may bring its own
        self._bounds = getattr(pool, "worker_bounds", config.worker_bounds)  # the executor's, when it has them
        low, high = self._bounds()
        self.limits = ScalingLimits(min_workers=low, max_workers=high, min_free_memory_mb=config.min_free_memory_mb)
        self.scaling_state = ScalingState()
        self.scale_every = scale_every
        self._feeds: list[Feed] = []
        self._feeds_lock = threading.Lock()
        self._next_scale = 0.0
        self._held_back_by_others = False  # the last check held growth back for other programs' CPU
        self._timeouts: dict[int, float] = {}  # worker slot -> seconds the killed page had run
        self._deaths_before_ready = 0
        self._empty_handed_deaths = 0  # deaths in a row of workers holding tasks with none in hand
        self._failed_seqs: set[int] = set()  # tasks that failed in a call while its breaker was open
        self.cancel_requested = 0.0  # clock time of the first cancel, 0 when none
        self.stop_now = False
        self._stop_handled = False
        self.critical: ErrorInfo | None = None
        self.pages_skipped = 0
        self.pages_known = 0
        self.worker_rss_mb: dict[int, float] = {}
        self.keep_alive = False  # serve submissions until told to stop (Engine.submit)
        self.outstanding: dict[int, int] = {}  # per job: tasks taken and not yet finished
        self.feeding: set[int] = set()  # jobs whose documents are still being read
        self._cancelled_jobs: set[int] = set()  # cancelled, not yet purged
        self.dropped_jobs: set[int] = set()  # cancelled: their tasks that come back are dropped
        self._documents_seen: dict[str, str] = {}  # sha256 -> first path, so a copy is done once
        self.copies: dict[str, str] = {}  # path of an exact copy not processed -> the path done instead
        self._baseline: ProgressSnapshot | None = None

    # --------------------------------------------------------------- submitting
    def add_documents(self, documents: Iterable[Document], priority: str = "normal", job: int = 0) -> None:
        """Queue documents; callable before or during a run (the urgent overtake the rest)."""
        with self._feeds_lock:
            self._feeds.append(Feed(iter(documents), PRIORITY_RANKS[priority], job))
            self.feeding.add(job)

    def note_copy(self, document: Document, original: str) -> None:
        """``document`` is not processed: it is an exact copy of ``original`` (the same sha256).
        Said once for each path, as a warning: two copies in an archive are worth a look."""
        if document.path in self.copies:
            return
        self.copies[document.path] = original
        logger.warning("{} is an exact copy of {} (same content): not processed again", document.path, original)

    def cancel_job(self, job: int) -> None:
        """Drop a job's documents and the tasks not started; its pages in flight still finish."""
        with self._feeds_lock:
            self._cancelled_jobs.add(job)

    def job_pending(self, job: int) -> bool:
        return job in self.feeding or self.outstanding.get(job, 0) > 0

    def _take(self, task: Task) -> Task:
        self.outstanding[task.job] = self.outstanding.get(task.job, 0) + 1
        return task

    def _finish(self, job: int) -> None:
        self.outstanding[job] = self.outstanding.get(job, 1) - 1

    def _purge_cancelled_jobs(self) -> None:
        with self._feeds_lock:
            cancelled, self._cancelled_jobs = self._cancelled_jobs, set()
            self._feeds = [feed for feed in self._feeds if feed.job not in cancelled]
            self.feeding -= cancelled
        if not cancelled:
            return
        self.dropped_jobs |= cancelled

        def doomed(task: Task) -> bool:
            return task.job in cancelled

        for task in [*self.queue.remove_where(doomed), *self.timers.remove_where(doomed),
                     *self.gates.remove_where(doomed)]:
            self._finish(task.job)
        if getattr(self.pool, "can_revoke", False):  # not started yet: asked back, then dropped
            for worker in list(self.pool.workers.values()):
                self.pool.revoke(worker, [task for task in worker.in_flight[1:] if doomed(task)])

    def cancel(self, immediate: bool = False) -> None:
        """Stop dispatching; pages in flight finish within the grace period (or not at all)."""
        if not self.cancel_requested:
            self.cancel_requested = self.clock()
        if immediate:
            self.stop_now = True

    @property
    def stopping(self) -> bool:
        return bool(self.cancel_requested) or self.critical is not None

    # ------------------------------------------------------------- per-run figures
    def run_counters(self) -> ProgressSnapshot:
        """The progress counters of this run only (the pool's board counts for its whole life)."""
        snapshot = self.pool.board.snapshot()
        return snapshot.minus(self._baseline) if self._baseline is not None else snapshot

    @property
    def peak_workers(self) -> int:
        """The most workers this run had at once."""
        return self.pool.peak_workers

    def breaker_counts(self) -> dict[str, dict[str, int]]:
        """State changes of each circuit breaker in this run (for report.json)."""
        return self.breakers.by_breaker()

    # ---------------------------------------------------------------- the loop
    def run(self) -> Iterator[Event]:
        low = self.limits.min_workers
        self._baseline = self.pool.board.snapshot()
        self.pool.peak_workers = len(self.pool.live)
        self.pool.resize(max(low, len(self.pool.live)), "start")
        fill = getattr(self.pool, "fill", None)
        while True:
            now = self.clock()
            if self._cancelled_jobs:
                self._purge_cancelled_jobs()
            if not self.stopping:
                yield from self._refill()
                for task in self.timers.due(now):
                    self.queue.push(task)
                if self.gates.held_count:
                    for task in self.gates.release(lambda task: not self._failed_before(task)):
                        self.queue.push(task)
                if now >= self._next_scale:
                    self._scale(now)
                if fill is not None:
                    fill()  # a worker that left is replaced at once
                self.dispatcher.dispatch()
            elif not self._stop_handled:
                self._stop_handled = True
                if getattr(self.pool, "can_revoke", False):
                    self.pool.revoke_waiting()  # what has not started stays undone (done on resume)
            yield from self._check_deadlines()
            if self._finished():
                return
            if self.stopping and self._stop_due(now):
                self.pool.terminate()
                return
            for pool_event in self.pool.wait(self._wait_time(now)):
                yield from self._handle(pool_event)
            yield Tick()

    def _wait_time(self, now: float) -> float:
        timeout = 0.1
        for when in (self.timers.next_time(), self.gates.next_release() if self.gates.held_count else None):
            if when is not None:
                timeout = min(timeout, max(0.0, when - now))
        return timeout

    def _finished(self) -> bool:
        if self.pool.in_flight_count():
            return False
        if self.stopping:
            return True
        return (not self.keep_alive and not self._feeds and not len(self.queue) and not len(self.timers)
                and not self.gates.held_count)

    def _stop_due(self, now: float) -> bool:
        if self.stop_now:
            return True
        if self.config.grace <= 0:
            return True  # --grace 0: pages in flight are not waited for
        started = self.cancel_requested or now
        return now - started > self.config.grace

    # ---------------------------------------------------------------- feeding
    def _refill(self) -> Iterator[Event]:
        """Read documents from the feeds while the queue is short (discovery stays lazy); a feed
        of a better priority than anything queued is read at once, so urgent work overtakes. A
        feed of a lower class is read too, a few tasks ahead (``LOOKAHEAD``), so that its pages
        wait in the queue where aging serves them, not unread behind a large better input."""
        wanted = max(8, 4 * self.limits.max_workers * self.pool.depth)
        while True:
            with self._feeds_lock:
                if not self._feeds:
                    return
                feed = self._feed_to_read(wanted)
            if feed is None:
                return
            try:
                document = next(feed.documents)
            except StopIteration:
                with self._feeds_lock:
                    self._feeds.remove(feed)
                    if not any(f.job == feed.job for f in self._feeds):
                        self.feeding.discard(feed.job)
                continue
            except Exception as exc:  # noqa: BLE001 - discovery errors are the input's, named
                logger.error("cannot read input: {}", exc)
                continue
            if self.document_done(document):
                continue
            first = self._documents_seen.setdefault(document.sha256, document.path)
            if first != document.path:
                self.note_copy(document, first)
                continue
            rank = feed.last_rank = min(feed.rank, PRIORITY_RANKS.get(document.priority, feed.rank))
            self.queue.push(self._take(Task(next_seq(), "ingest", document, rank, 0, job=feed.job)))
        yield  # a generator, for symmetry with the other steps

    def _feed_to_read(self, wanted: int) -> Feed | None:
        """The feed to read a document from now, or None when the queue holds enough of each."""
        by_rank = sorted(self._feeds, key=lambda f: f.rank)  # stable: the first added of a class first
        best = by_rank[0]
        if len(self.queue) < wanted or best.rank < self.queue.best_rank():
            return best
        counts = self.queue.counts()
        return next((feed for feed in by_rank[1:] if feed.rank > best.rank
                     and counts[feed.rank if feed.last_rank < 0 else feed.last_rank] < LOOKAHEAD), None)

    # ---------------------------------------------------------------- scaling
    def _scale(self, now: float) -> None:
        ready_in = getattr(self.probe, "cpu_ready_in", None)
        wait = ready_in() if ready_in is not None else 0.0
        if wait > 0:  # the CPU counter was primed too recently: its 0 % would be no reading
            self._next_scale = now + wait
            return
        self._next_scale = now + self.scale_every
        low, high = self._bounds()  # an existing Dask cluster's change as workers join and leave
        if (low, high) != (self.limits.min_workers, self.limits.max_workers):
            self.limits = dataclasses.replace(self.limits, min_workers=low, max_workers=high)
        self.worker_rss_mb = self.pool.check_memory(self.config.max_worker_rss_mb)
        cpu, available = self.probe.sample()
        cpu_count = getattr(self.probe, "cpu_count", 0)
        other_cpu = 0.0
        if cpu_count and hasattr(self.probe, "cpu_percent_of"):
            ours = [os.getpid(), *(w.pid for w in self.pool.workers.values() if getattr(w, "pid", None))]
            other_cpu = max(0.0, cpu - self.probe.cpu_percent_of(ours))
        inputs = ScalingInputs(
            backlog_pages=len(self.queue),
            busy_workers=self.pool.busy_count(),
            current_workers=len(self.pool.live),
            cpu_percent=cpu,
            available_memory_mb=available,
            worker_rss_mb=max(self.worker_rss_mb.values(), default=0.0),
            seconds_per_page=self.costs.page_seconds,
            other_cpu_percent=other_cpu,
            cpu_count=cpu_count,
        )
        decision = decide_worker_count(inputs, self.limits, self.scaling_state)
        self.scaling_state = decision.state
        logger.debug("scaling: {} ready pages, {} of {} workers busy, CPU {:.0f} % ({:.0f} % other programs) of {} "
                     "cores, {:.0f} MB available, largest worker {:.0f} MB, {:.2f} s a page → {}: {}",
                     inputs.backlog_pages, inputs.busy_workers, inputs.current_workers, cpu, other_cpu, cpu_count,
                     available, inputs.worker_rss_mb, inputs.seconds_per_page, decision.target, decision.reason)
        by_others = "other processes" in decision.held_back
        if by_others and not self._held_back_by_others:
            logger.info("no worker added: {} (every program this run started counts as its own)", decision.reason)
        self._held_back_by_others = by_others
        if decision.target != len(self.pool.live) or decision.target != self.pool.target:
            self.pool.resize(decision.target, decision.reason)
