"""What each answer, failure, timeout and dead worker leads to (the scheduler's parent side).

A mixin of :class:`engine.scheduler.Scheduler`; every method here runs in its loop.

- A result is final; a failure is retried under the retry policy, held back while its plugin's
  circuit breaker is open (not charged to the page, within a bound), or final.
- A task given back by a worker (never started) goes back to the queue, uncharged.
- A worker that died, hung, or never started: engine.deaths.
- A breaker that gives up (engine.breakers: open ``breaker_give_up`` seconds, its trials failing)
  once nothing else is left to run: the pages it holds, and those that reach it after, end as
  failed records (transient) naming the plugin, the hook and since when it is open. While other
  work remains, its pages wait, and the next failed trial looks again.
- An ingest's page tasks are checked (engine.ingest_check): none, or a set that does not describe
  the document whole, fails the document naming the plugin.
- Tasks of a cancelled job that come back (an ingest's pages, a task given back, a failure to
  retry) are dropped.
"""

from __future__ import annotations

from typing import Any, Iterator

from loguru import logger

from engine.breakers import CLOSED
from engine.deaths import STAGE_OF_HOOK, Deaths, _key
from engine.events import AttemptFailed, DocumentFailed, DocumentOpened, Event, PageFinished
from engine.ingest_check import check_ingested
from engine.pagequeue import Task, next_seq
from engine.pipeline import StageFailure, failed_result
from engine.pool import PoolEvent
from engine.records import ErrorInfo, PageResult, PageTask

HELD_LIMIT_FACTOR = 3  # a page held back more than this × max_attempts times is charged again


class Outcomes(Deaths):
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
            error = check_ingested(task.payload, value, self.gates.first_answer(called, "pagemill_ingest"))
            if error is not None:
                yield from self._failed(task, error, 0.0)
            else:
                yield from self._ingested(task, value)
        elif kind == "result":
            if self.gates.precise:
                self.gates.settle(task, called, None, False)
            else:
                self.breakers.record(None, None, ok=True)
            self.costs.record(task, sum(value.stage_seconds.values()))
            self._finish(task.job)
            self._failed_seqs.discard(task.seq)
            yield PageFinished(_with_attempts(value, task.attempts + 1), task.job)
        elif kind == "failure":
            yield from self._stage_failed(task, value, called, failed)

    def _stage_failed(self, task: Task, failure: StageFailure, called: int, failed: int) -> Iterator[Event]:
        transient = failure.error.error_class == "transient"
        key = self.gates.key_of(failed) or (failure.plugin or "unknown", failure.hook)
        trial = self.gates.is_trial(task, key)
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
        yield from self._breaker_failed(key, trial)
        if closed:
            yield from self._failed(task, failure.error, failure.seconds)
        else:
            self._failed_seqs.add(task.seq)
            yield from self._held_back(task, key, failure)

    def _failed_before(self, task: Task) -> bool:
        """Whether the task failed on its own before: charged an attempt, or failed in a call
        while its plugin's breaker was open (a call skipped by an open breaker is no failure)."""
        return task.attempts > 0 or task.seq in self._failed_seqs

    def _breaker_failed(self, key: tuple[str, str], trial: bool | None) -> Iterator[Event]:
        """A failure for ``key``'s breaker; when the breaker gives up, so do the pages it holds."""
        self.gates.failure(key, trial)
        breaker = self.gates.breaker(key)
        if breaker.exhausted and self.gates.held_for(key) and self._nothing_else_to_run():
            if not self.stopping:
                logger.error("circuit breaker {}: {} trials in a row failed; the {} pages it holds back fail "
                             "(--retry-failed tries them again)", breaker.name, breaker.failed_trials,
                             self.gates.held_for(key))
            for held in self.gates.take_held(key):
                yield from self._circuit_gave_up(held, key, None)

    def _nothing_else_to_run(self) -> bool:
        """Whether the run has no work left but pages held back by circuit breakers: nothing
        queued, waiting for a retry, running or still to be read. (Where single calls cannot be
        gated, an open breaker holds every page back, so nothing else can run.)"""
        if not self.gates.precise:
            return True
        return not (len(self.queue) or len(self.timers) or self.pool.in_flight_count() or self._feeds)

    def _circuit_gave_up(self, task: Task, key: tuple[str, str], failure: StageFailure | None) -> Iterator[Event]:
        """A page of an exhausted breaker: a failed record (transient, so --retry-failed redoes it)."""
        breaker = self.gates.breaker(key)
        if failure is not None:
            task.attempts += 1
            yield AttemptFailed(task.where(), _key(task), task.attempts + task.held_failures, failure.error,
                                failure.seconds, None)
        task.attempts, task.held_failures = max(1, task.attempts + task.held_failures), 0
        if task.job in self.dropped_jobs or self.stopping:
            if task.job in self.dropped_jobs:
                self._finish(task.job)
            return  # left unfinished: done on resume
        since = f" since {breaker.open_since}" if breaker.open_since else ""
        message = (f"plugin {key[0]}: {key[1]} failing, circuit open{since} "
                   f"({breaker.failed_trials} trials in a row failed)")
        stage = failure.error.stage if failure is not None else STAGE_OF_HOOK.get(key[1], "")
        self._failed_seqs.discard(task.seq)
        yield from self._give_up(task, ErrorInfo("transient", "CircuitOpenError", message, stage))

    def _held_back(self, task: Task, key: tuple[str, str], failure: StageFailure) -> Iterator[Event]:
        breaker = self.gates.breaker(key)
        # an exhausted breaker holds one page at most, for its next trial; once nothing else is
        # left to run, the others fail now
        if (breaker.exhausted and self._nothing_else_to_run()
                and not (self.gates.precise and not self.gates.held_for(key) and breaker.would_allow())):
            yield from self._circuit_gave_up(task, key, failure)
            return
        if task.held_failures >= HELD_LIMIT_FACTOR * self.policy.max_attempts:
            yield from self._failed(task, failure.error, failure.seconds)
            return
        task.held_failures += 1
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
        self._failed_seqs.discard(task.seq)
        if task.kind == "ingest":
            self.pages_known += 1  # its one record (page 0) stands for the document in the outputs
            yield DocumentFailed(task.payload, error, task.attempts, task.job)
        else:
            yield PageFinished(failed_result(task.payload, error, task.attempts), task.job)

def _with_attempts(result: PageResult, attempts: int) -> PageResult:
    if result.attempts == attempts:
        return result
    from dataclasses import replace

    return replace(result, attempts=attempts)
