"""The dispatch loop (parent side): queue → workers → outcomes, with retries, deadlines,
crashes, circuit breakers, adaptive scaling and cancellation.

``Scheduler.run()`` is a generator of events (:class:`DocumentOpened`, :class:`DocumentFailed`,
:class:`AttemptFailed`, :class:`PageFinished`, :class:`Tick`). It never runs a stage and never
touches the ledger: the caller (engine.runner) commits what it yields. Every task it takes ends
in exactly one final event, or stays unfinished when the run is cancelled (and is done on resume).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from loguru import logger

from engine.config import EngineConfig
from engine.events import (
    AttemptFailed,
    DocumentFailed,
    DocumentOpened,
    Event,
    Feed,
    PageFinished,
    Tick,
)
from engine.pagequeue import PageQueue, RetryTimers, Task, next_seq
from engine.pipeline import StageFailure, failed_result
from engine.pool import PoolEvent, WorkerHandle, WorkerPool, describe_exit
from engine.records import PRIORITY_RANKS, Document, ErrorInfo, PageResult, PageTask
from engine.retry import BreakerBoard, RetryPolicy

BATCH_SECONDS = 0.02  # pages shorter than this go to a worker several in one message
from engine.scaling import (
    ResourceProbe,
    ScalingInputs,
    ScalingLimits,
    ScalingState,
    decide_worker_count,
)


class Scheduler:
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
        self.breakers = BreakerBoard(config.breaker_threshold, config.breaker_reset_seconds, clock=clock)
        self.probe = probe or ResourceProbe()
        low, high = config.worker_bounds()
        self.limits = ScalingLimits(min_workers=low, max_workers=high, min_free_memory_mb=config.min_free_memory_mb)
        self.scaling_state = ScalingState()
        self.scale_every = scale_every
        self._feeds: list[Feed] = []
        self._feeds_lock = threading.Lock()
        self._next_scale = 0.0
        self._timeouts: dict[int, float] = {}  # worker slot -> seconds the killed page had run
        self._deaths_before_ready = 0
        self.cancel_requested = 0.0  # clock time of the first cancel, 0 when none
        self.stop_now = False
        self.critical: ErrorInfo | None = None
        self.pages_skipped = 0
        self.pages_known = 0
        self._seconds_per_page = 0.0
        self.worker_rss_mb: dict[int, float] = {}
        self.keep_alive = False  # serve submissions until told to stop (Engine.submit)
        self.outstanding: dict[int, int] = {}  # per job: tasks taken and not yet finished
        self.feeding: set[int] = set()  # jobs whose documents are still being read
        self._cancelled_jobs: set[int] = set()
        self._documents_seen: dict[str, str] = {}  # sha256 -> first path, so a copy is done once

    # --------------------------------------------------------------- submitting
    def add_documents(self, documents: Iterable[Document], priority: str = "normal", job: int = 0) -> None:
        """Queue documents; callable before or during a run (the urgent overtake the rest)."""
        with self._feeds_lock:
            self._feeds.append(Feed(iter(documents), PRIORITY_RANKS[priority], job))
            self.feeding.add(job)

    def cancel_job(self, job: int) -> None:
        """Drop a job's documents and queued pages; its pages in flight still finish."""
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
        if cancelled:
            for task in self.queue.remove_where(lambda t: t.job in cancelled) + self.timers.remove_where(
                lambda t: t.job in cancelled
            ):
                self._finish(task.job)

    def cancel(self, immediate: bool = False) -> None:
        """Stop dispatching; pages in flight finish within the grace period (or not at all)."""
        if not self.cancel_requested:
            self.cancel_requested = self.clock()
        if immediate:
            self.stop_now = True

    @property
    def stopping(self) -> bool:
        return bool(self.cancel_requested) or self.critical is not None

    # ---------------------------------------------------------------- the loop
    def run(self) -> Iterator[Event]:
        low, _ = self.config.worker_bounds()
        self.pool.resize(max(low, len(self.pool.live)), "start")
        while True:
            now = self.clock()
            if self._cancelled_jobs:
                self._purge_cancelled_jobs()
            if not self.stopping:
                yield from self._refill()
                for task in self.timers.due(now):
                    self.queue.push(task)
                if now >= self._next_scale:
                    self._scale(now)
                self._dispatch()
            yield from self._check_deadlines()
            if self._finished():
                return
            if self.stopping and self._stop_due(now):
                self.pool.terminate()
                return
            timeout = 0.1
            next_timer = self.timers.next_time()
            if next_timer is not None:
                timeout = min(timeout, max(0.0, next_timer - now))
            for pool_event in self.pool.wait(timeout):
                yield from self._handle(pool_event)
            yield Tick()

    def _finished(self) -> bool:
        if self.pool.in_flight_count():
            return False
        if self.stopping:
            return True
        return not self.keep_alive and not self._feeds and not len(self.queue) and not len(self.timers)

    def _stop_due(self, now: float) -> bool:
        if self.stop_now:
            return True
        started = self.cancel_requested or now
        return now - started > self.config.grace

    # ---------------------------------------------------------------- feeding
    def _refill(self) -> Iterator[Event]:
        """Read documents from the feeds while the queue is short (discovery stays lazy); a feed
        of a better priority than anything queued is read at once, so urgent work overtakes."""
        wanted = max(8, 4 * self.limits.max_workers * self.pool.depth)
        while True:
            with self._feeds_lock:
                if not self._feeds:
                    return
                feed = min(self._feeds, key=lambda f: f.rank)
            if len(self.queue) >= wanted and feed.rank >= self.queue.best_rank():
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
                logger.info("{}: same content as {}; done once", document.path, first)
                continue
            rank = min(feed.rank, PRIORITY_RANKS.get(document.priority, feed.rank))
            self.queue.push(self._take(Task(next_seq(), "ingest", document, rank, 0, job=feed.job)))
        yield  # a generator, for symmetry with the other steps

    def _dispatch(self) -> None:
        for worker in self.pool.free_capacity():
            while worker.messages < self.pool.depth and len(self.queue):
                if not self.breakers.allow_page():
                    return
                size = min(self._batch_size(), self.pool.tasks_before_recycle(worker))
                tasks = [task for task in (self.queue.pop() for _ in range(size)) if task is not None]
                if not tasks:
                    return
                self.pool.send_batch(worker, tasks)

    def _batch_size(self) -> int:
        """Pages per message: one, unless pages are so short that IPC would dominate (text layers,
        stand-ins), then enough for about BATCH_SECONDS of work; one while a breaker is on trial."""
        if self._seconds_per_page <= 0 or self._seconds_per_page >= BATCH_SECONDS or self.breakers.blocked_until():
            return 1
        if any(b.state != "closed" for b in self.breakers.breakers.values()):
            return 1
        return max(1, min(self.pool.max_batch, int(BATCH_SECONDS / self._seconds_per_page)))

    # --------------------------------------------------------------- outcomes
    def _handle(self, event: PoolEvent) -> Iterator[Event]:
        worker = event.worker
        if event.kind == "died":
            yield from self._worker_died(worker, event.exitcode)
            return
        seq, kind, value = event.message
        if kind == "ready":
            worker.ready = True
            self._deaths_before_ready = 0
            return
        if kind == "log":
            level, text = value
            logger.log(level, "worker {}: {}", worker.slot, text)
            return
        if kind == "fatal":
            if seq >= 0:
                self.pool.complete(worker, seq)  # left unfinished: done on resume
            if self.critical is None:
                self.critical = ErrorInfo("critical", "PluginLoadError", f"a worker cannot start: {value}", "start")
                logger.error("{}", self.critical.message)
            return
        if kind == "batch":
            self.pool.answered(worker)
            for answer in value:
                yield from self._answer(worker, *answer)
            return
        self.pool.answered(worker)
        yield from self._answer(worker, seq, kind, value)

    def _answer(self, worker: WorkerHandle, seq: int, kind: str, value: Any) -> Iterator[Event]:
        task = self.pool.complete(worker, seq)
        if task is None:
            return
        if kind == "pages":
            yield from self._ingested(task, value)
        elif kind == "result":
            self.breakers.record(None, None, ok=True)
            total = sum(value.stage_seconds.values())
            self._seconds_per_page = total if not self._seconds_per_page else 0.8 * self._seconds_per_page + 0.2 * total
            self._finish(task.job)
            yield PageFinished(_with_attempts(value, task.attempts + 1), task.job)
        elif kind == "failure":
            failure: StageFailure = value
            charge = True
            if failure.error.error_class == "transient":
                breaker = self.breakers.get(failure.plugin or "unknown", failure.hook)
                # a failure while the plugin's breaker is open or on trial is the plugin's, not the
                # page's: the page waits for the breaker and keeps its attempts (within a bound)
                charge = breaker.state == "closed" or task.held_failures >= 3 * self.policy.max_attempts
                if not charge:
                    task.held_failures += 1
                breaker.record_failure()
            yield from self._failed(task, failure.error, failure.seconds, charge)

    def _ingested(self, task: Task, pages: list[PageTask]) -> Iterator[Event]:
        document: Document = task.payload
        queued = 0
        for page in pages:
            self.pages_known += 1
            if self.is_done(page.key):
                self.pages_skipped += 1
                continue
            self.queue.push(self._take(Task(next_seq(), "page", page, task.rank, len(pages), job=task.job)))
            queued += 1
        self._finish(task.job)
        yield DocumentOpened(document, len(pages), queued)

    def _failed(self, task: Task, error: ErrorInfo, seconds: float, charge: bool = True) -> Iterator[Event]:
        if charge:
            task.attempts += 1
        retry = (not charge or self.policy.should_retry(error.error_class, task.attempts)) and not self.stopping
        delay = self.policy.delay(max(1, task.attempts)) if retry else None
        yield AttemptFailed(task.where(), _key(task), task.attempts + task.held_failures, error, seconds, delay)
        if error.error_class == "critical":
            self.critical = error
            logger.error("{}: {} — stopping the run", task.where(), error.one_line())
            return
        if retry:
            logger.warning("{}: {} (attempt {}, retry in {:.1f} s)", task.where(), error.one_line(), task.attempts, delay)
            self.timers.add(task, self.clock() + (delay or 0.0))
            return
        if self.stopping and error.error_class == "transient":
            return  # left unfinished: done on resume
        yield from self._give_up(task, error)

    def _give_up(self, task: Task, error: ErrorInfo) -> Iterator[Event]:
        """The task's final failure: one log line naming the file (and page), one record."""
        logger.error("{}: {}", task.where(), error.one_line())
        self._finish(task.job)
        if task.kind == "ingest":
            yield DocumentFailed(task.payload, error, task.attempts, task.job)
        else:
            yield PageFinished(failed_result(task.payload, error, task.attempts), task.job)

    def _worker_died(self, worker: WorkerHandle, exitcode: int | None) -> Iterator[Event]:
        timed_out = self._timeouts.pop(worker.slot, None)
        suspect = self.pool.running_task(worker)
        self.pool.board.clear_in_hand(worker.slot)
        if not worker.ready:
            self._deaths_before_ready += 1
            if self._deaths_before_ready >= 3:
                self.critical = ErrorInfo("critical", "WorkerStartError", f"workers die at start ({describe_exit(exitcode)})", "start")
                logger.error("{}", self.critical.message)
        if timed_out is not None:
            reason = ErrorInfo("transient", "PageTimeout", f"page ran past {self.config.page_timeout:g} s; worker killed", "")
        else:
            reason = ErrorInfo("transient", "WorkerDied", describe_exit(exitcode), "")
            if worker.in_flight:
                logger.warning("worker {} (pid {}) died: {}", worker.slot, worker.pid, describe_exit(exitcode))
        for task in worker.in_flight:
            if task is suspect:
                continue
            self.queue.push(task)  # it had not started: back to the queue, no attempt charged
        worker.in_flight.clear()
        if suspect is not None:
            if self.stopping:
                return
            yield from self._failed_or_poison(suspect, reason, timed_out or 0.0)

    def _failed_or_poison(self, task: Task, reason: ErrorInfo, seconds: float) -> Iterator[Event]:
        if task.attempts + 1 >= self.policy.max_attempts:
            task.attempts += 1
            yield AttemptFailed(task.where(), _key(task), task.attempts, reason, seconds, None)
            what = "page" if task.kind == "page" else "document"
            message = f"poison {what}: {reason.message} on each of {task.attempts} attempts"
            yield from self._give_up(task, ErrorInfo("permanent", "PoisonPageError", message, reason.stage))
            return
        yield from self._failed(task, reason, seconds)

    def _check_deadlines(self) -> Iterator[Event]:
        for worker, task, elapsed in self.pool.overdue(self.config.page_timeout):
            if worker.slot in self._timeouts:
                continue
            self._timeouts[worker.slot] = elapsed
            logger.warning("{}: running for {:.0f} s, past --page-timeout; killing its worker", task.where(), elapsed)
            self.pool.kill(worker, "page timeout")
        return
        yield

    # ---------------------------------------------------------------- scaling
    def _scale(self, now: float) -> None:
        self._next_scale = now + self.scale_every
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
            seconds_per_page=self._seconds_per_page,
            other_cpu_percent=other_cpu,
            cpu_count=cpu_count,
        )
        decision = decide_worker_count(inputs, self.limits, self.scaling_state)
        self.scaling_state = decision.state
        if decision.target != len(self.pool.live) or decision.target != self.pool.target:
            self.pool.resize(decision.target, decision.reason)


def _key(task: Task) -> tuple[str, int]:
    """The ledger key of a task: a page's, or (sha256, -1) for a whole document."""
    return (task.payload.sha256, task.payload.index if task.kind == "page" else -1)


def _with_attempts(result: PageResult, attempts: int) -> PageResult:
    if result.attempts == attempts:
        return result
    from dataclasses import replace

    return replace(result, attempts=attempts)
