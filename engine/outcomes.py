"""What each answer, failure, timeout and dead worker leads to (the scheduler's parent side).

A mixin of :class:`engine.scheduler.Scheduler`; every method here runs in its loop.

- A result is final; a failure is retried under the retry policy, held back while its plugin's
  circuit breaker is open (not charged to the page, within a bound), or final.
- A task given back by a worker (never started) goes back to the queue, uncharged.
- A worker that died, or was killed past ``--page-timeout``, or could not be written to: the task
  it had in hand (its progress slot says which) is charged a transient failure and retried, or
  failed as a poison page after ``max_attempts``; the others it held never started and go back
  uncharged; the worker is replaced at once. A timeout or a death inside a plugin's hook counts
  as a failure for that plugin's breaker (engine.breakers).
- Tasks of a cancelled job that come back (an ingest's pages, a task given back, a failure to
  retry) are dropped.
"""

from __future__ import annotations

from typing import Any, Iterator

from loguru import logger

from engine.breakers import CLOSED
from engine.events import AttemptFailed, DocumentFailed, DocumentOpened, Event, PageFinished
from engine.pagequeue import Task, next_seq
from engine.pipeline import StageFailure, failed_result
from engine.pool import PoolEvent, describe_exit
from engine.records import ErrorInfo, PageResult, PageTask

HELD_LIMIT_FACTOR = 3  # a page held back more than this × max_attempts times is charged again


class Outcomes:
    """Handling of pool events, for the Scheduler (see the module docstring)."""

    # ------------------------------------------------------------------ events
    def _handle(self, event: PoolEvent) -> Iterator[Event]:
        worker = event.worker
        if event.kind == "died":
            yield from self._worker_died(worker, event.exitcode)
            return
        seq, kind, value, *calls = event.message
        if kind == "ready":
            worker.ready = True
            self._deaths_before_ready = 0
            if isinstance(value, tuple):
                self.gates.learn(value[1])
                self.pool.call_table = self.pool.call_table or value[1]  # for the pool's next runs
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
        if kind == "revoked":
            task = self.pool.given_back(worker, seq)
            if task is not None:
                self._give_back(task)
            return
        called, failed = (calls + [0, -1])[:2]
        yield from self._answer(worker, seq, kind, value, called, failed)

    def _answer(self, worker: Any, seq: int, kind: str, value: Any, called: int, failed: int) -> Iterator[Event]:
        task = self.pool.complete(worker, seq)
        if task is None:
            return
        if kind == "pages":
            self.gates.settle(task, called, None, False)
            yield from self._ingested(task, value)
        elif kind == "result":
            if self.gates.precise:
                self.gates.settle(task, called, None, False)
            else:
                self.breakers.record(None, None, ok=True)
            self.costs.record(task, sum(value.stage_seconds.values()))
            self._finish(task.job)
            yield PageFinished(_with_attempts(value, task.attempts + 1), task.job)
        elif kind == "failure":
            yield from self._stage_failed(task, value, called, failed)

    def _stage_failed(self, task: Task, failure: StageFailure, called: int, failed: int) -> Iterator[Event]:
        transient = failure.error.error_class == "transient"
        key = self.gates.key_of(failed) or (failure.plugin or "unknown", failure.hook)
        self.gates.settle(task, called, key, transient)
        if not transient:
            yield from self._failed(task, failure.error, failure.seconds)
            return
        breaker = self.gates.breaker(key)
        if failure.error.type == "CircuitOpenError" and self.gates.key_of(failed) is not None:
            yield from self._held_back(task, key, failure)  # failed fast: no call, nothing to feed
            return
        # a failure while the plugin's breaker is open or on trial is the plugin's, not the
        # page's: the page waits for the breaker and keeps its attempts (within a bound)
        closed = breaker.state == CLOSED
        self.gates.failure(key)
        if closed:
            yield from self._failed(task, failure.error, failure.seconds)
        else:
            yield from self._held_back(task, key, failure)

    def _held_back(self, task: Task, key: tuple[str, str], failure: StageFailure) -> Iterator[Event]:
        if task.held_failures >= HELD_LIMIT_FACTOR * self.policy.max_attempts:
            yield from self._failed(task, failure.error, failure.seconds)
            return
        task.held_failures += 1
        breaker = self.gates.breaker(key)
        free = breaker.free_at()
        wait = max(0.0, (free if free is not None else self.clock()) - self.clock())
        yield AttemptFailed(task.where(), _key(task), task.attempts + task.held_failures, failure.error,
                            failure.seconds, wait)
        if task.job in self.dropped_jobs or self.stopping:
            if task.job in self.dropped_jobs:
                self._finish(task.job)
            return  # left unfinished: done on resume
        if failure.error.type == "CircuitOpenError":  # a call skipped, not made: one line per page is noise
            logger.debug("{}: held back while circuit breaker {} is {} ({} of {} attempts used)", task.where(),
                         breaker.name, breaker.state, task.attempts, self.policy.max_attempts)
        else:
            logger.warning("{}: {} (circuit breaker {} is {}: held back, not charged; {} of {} attempts used)",
                           task.where(), failure.error.one_line(), breaker.name, breaker.state, task.attempts,
                           self.policy.max_attempts)
        if self.gates.precise:
            self.gates.hold(key, task)
        else:
            self.timers.add(task, self.clock() + wait)

    def _ingested(self, task: Task, pages: list[PageTask]) -> Iterator[Event]:
        document = task.payload
        dropped = task.job in self.dropped_jobs
        queued = 0
        for page in pages:
            self.pages_known += 1
            if self.is_done(page.key):
                self.pages_skipped += 1
                continue
            if dropped:
                continue  # its job was cancelled while the document was being read
            self.queue.push(self._take(Task(next_seq(), "page", page, task.rank, len(pages), job=task.job)))
            queued += 1
        self._finish(task.job)
        yield DocumentOpened(document, len(pages), queued)

    def _give_back(self, task: Task) -> None:
        """A task that never started goes back to the queue, uncharged (or is dropped)."""
        self.gates.settle(task, 0, None, False)
        if task.job in self.dropped_jobs:
            self._finish(task.job)
            return
        self.queue.push(task)

    # ---------------------------------------------------------------- failures
    def _failed(self, task: Task, error: ErrorInfo, seconds: float) -> Iterator[Event]:
        task.attempts += 1
        dropped = task.job in self.dropped_jobs
        retriable = self.policy.should_retry(error.error_class, task.attempts)
        retry = retriable and not self.stopping and not dropped
        delay = self.policy.delay(task.attempts) if retry else None
        yield AttemptFailed(task.where(), _key(task), task.attempts + task.held_failures, error, seconds, delay)
        if error.error_class == "critical":
            self.critical = error
            logger.error("{}: {} — stopping the run", task.where(), error.one_line())
            return
        if retry:
            logger.warning("{}: {} (attempt {} of {}, retry in {:.1f} s)", task.where(), error.one_line(),
                           task.attempts, self.policy.max_attempts, delay)
            self.timers.add(task, self.clock() + (delay or 0.0))
            return
        if retriable:  # not retried now: the run stops, or the page's job was cancelled
            if dropped:
                self._finish(task.job)
            return  # left unfinished: done on resume
        yield from self._give_up(task, error)

    def _give_up(self, task: Task, error: ErrorInfo) -> Iterator[Event]:
        """The task's final failure: one log line naming the file (and page), one record."""
        logger.error("{}: {}", task.where(), error.one_line())
        self._finish(task.job)
        if task.kind == "ingest":
            self.pages_known += 1  # its one record (page 0) stands for the document in the outputs
            yield DocumentFailed(task.payload, error, task.attempts, task.job)
        else:
            yield PageFinished(failed_result(task.payload, error, task.attempts), task.job)

    # ---------------------------------------------------------- deaths, timeouts
    def _worker_died(self, worker: Any, exitcode: int | None) -> Iterator[Event]:
        timed_out = self._timeouts.pop(worker.slot, None)
        suspect = self.pool.running_task(worker)
        plugin_in_hand = getattr(self.pool, "plugin_in_hand", None)
        key = self.gates.key_of(plugin_in_hand(worker)) if plugin_in_hand is not None else None
        if not worker.ready:
            self._deaths_before_ready += 1
            if self._deaths_before_ready >= 3:
                self.critical = ErrorInfo("critical", "WorkerStartError",
                                          f"workers die at start ({describe_exit(exitcode)})", "start")
                logger.error("{}", self.critical.message)
        take_all = getattr(self.pool, "take_all", None)
        held = take_all(worker) if take_all is not None else _take_all(worker)
        if timed_out is not None:
            reason = ErrorInfo("transient", "PageTimeout", f"page ran past {self.config.page_timeout:g} s; worker killed", "")
        else:
            reason = ErrorInfo("transient", "WorkerDied", describe_exit(exitcode), "")
            if held:
                logger.warning("worker {} (pid {}) died: {}", worker.slot, worker.pid, describe_exit(exitcode))
            else:
                logger.info("worker {} (pid {}) died while idle: {}", worker.slot, worker.pid, describe_exit(exitcode))
        for task in held:
            if task is not suspect:
                self._give_back(task)  # it had not started: no attempt charged
        if not self.stopping and hasattr(self.pool, "fill"):
            self.pool.fill(f"replacing worker {worker.slot} (pid {worker.pid})")
        if suspect is None:
            return
        self.gates.settle(suspect, 0, key, True)
        if key is not None:
            self.gates.failure(key)  # the plugin whose hook was running hung or crashed
        if self.stopping or suspect.job in self.dropped_jobs:
            if suspect.job in self.dropped_jobs:
                self._finish(suspect.job)
            return  # left unfinished: done on resume
        yield from self._failed_or_poison(suspect, reason, timed_out or 0.0)

    def _failed_or_poison(self, task: Task, reason: ErrorInfo, seconds: float) -> Iterator[Event]:
        if task.attempts + 1 >= self.policy.max_attempts:
            task.attempts += 1
            yield AttemptFailed(task.where(), _key(task), task.attempts + task.held_failures, reason, seconds, None)
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


def _take_all(worker: Any) -> list[Task]:
    """Every task of a worker slot of an executor without ``take_all``."""
    tasks = list(worker.in_flight)
    worker.in_flight.clear()
    return tasks


def _key(task: Task) -> tuple[str, int]:
    """The ledger key of a task: a page's, or (sha256, -1) for a whole document."""
    return (task.payload.sha256, task.payload.index if task.kind == "page" else -1)


def _with_attempts(result: PageResult, attempts: int) -> PageResult:
    if result.attempts == attempts:
        return result
    from dataclasses import replace

    return replace(result, attempts=attempts)
