"""Workers that die, hang, or never start (the scheduler's parent side).

A mixin of :class:`engine.outcomes.Outcomes`; every method here runs in the scheduler's loop.

- A worker that died, or was killed past ``--page-timeout``, or could not be written to, or sent
  a message that cannot be read: the task it had in hand (its progress slot says which) is
  charged a transient failure and retried, or failed as a poison page after ``max_attempts``; the
  others it held never started and go back uncharged; the worker is replaced at once. A poison
  page's message names the plugin and hook that ran when its worker died or hung (the worker's
  progress slot says which), and its stage is that hook's.
- A worker that dies with no task in hand while it holds tasks is charged nothing; when that
  happens ``EMPTY_HANDED_LIMIT`` times in a row, the first task the worker held is charged, so a
  page whose answer kills its worker after it is done cannot go round for ever.
- A death or a timeout inside a plugin's hook is a failure for that plugin's breaker, on the
  page's first attempt only (engine.breakers).
- A worker that has not said ready within ``start_timeout`` is killed and counted as a death
  before ready; after ``START_FAILURES`` such deaths in a row the run stops (critical), naming
  what hangs or dies.
"""

from __future__ import annotations

from typing import Any, Iterator

from loguru import logger

from engine.events import AttemptFailed, Event
from engine.pagequeue import Task
from engine.pool import describe_exit
from engine.records import ErrorInfo

STAGE_OF_HOOK = {"pagemill_ingest": "ingest", "pagemill_load_page": "load", "pagemill_ocr": "ocr",
                 "pagemill_extract": "extract", "pagemill_validate": "validate"}
EMPTY_HANDED_LIMIT = 2  # deaths in a row with nothing in hand before the first task held is charged
START_FAILURES = 3  # workers in a row that die or hang before ready: the run stops
START_TIMEOUT = 60.0  # seconds a worker may take to start, at most ...
START_TIMEOUT_FLOOR = 5.0  # ... and at least, whatever --page-timeout says


def start_timeout(page_timeout: float) -> float:
    """Seconds a worker may take to say ready: 60, or the page timeout when lower (never under
    5 s: importing the plugins takes longer than a short page)."""
    return min(START_TIMEOUT, max(page_timeout, START_TIMEOUT_FLOOR))


class Deaths:
    """Handling of dead, hung and never-ready workers, for the Scheduler (see the module docstring)."""

    def _worker_died(self, worker: Any, exitcode: int | None) -> Iterator[Event]:
        timed_out = self._timeouts.pop(worker.slot, None)
        suspect = self.pool.running_task(worker)
        plugin_in_hand = getattr(self.pool, "plugin_in_hand", None)
        key = self.gates.key_of(plugin_in_hand(worker)) if plugin_in_hand is not None else None
        fault = getattr(worker, "fault", "")
        how = f"worker {fault}" if fault else describe_exit(exitcode)
        if not worker.ready:
            self._died_before_ready(how, fault)
        take_all = getattr(self.pool, "take_all", None)
        held = take_all(worker) if take_all is not None else _take_all(worker)
        if timed_out is not None:
            reason = ErrorInfo("transient", "PageTimeout", f"page ran past {self.config.page_timeout:g} s; worker killed", "")
        else:
            reason = ErrorInfo("transient", "WorkerDied", how, "")
            if held:
                logger.warning("worker {} (pid {}) died: {}", worker.slot, worker.pid, how)
            else:
                logger.info("worker {} (pid {}) died while idle: {}", worker.slot, worker.pid, how)
        if suspect is None and held and timed_out is None:
            suspect, reason = self._empty_handed(held, how, reason)
        elif suspect is not None:
            self._empty_handed_deaths = 0
        for task in held:
            if task is not suspect:
                self._give_back(task)  # it had not started: no attempt charged
        if not self.stopping and hasattr(self.pool, "fill"):
            self.pool.fill(f"replacing worker {worker.slot} (pid {worker.pid})")
        if suspect is None:
            return
        if key is not None:
            suspect.lost_in = key
        trial = self.gates.is_trial(suspect, key)
        first_attempt = not self._failed_before(suspect)
        # a retry that dies says nothing of the plugin: a trial it carried goes to the next page at once
        self.gates.settle(suspect, 0, key if first_attempt else None, True)
        if key is not None and first_attempt:
            yield from self._breaker_failed(key, trial)  # the plugin whose hook was running hung or crashed
        if self.stopping or suspect.job in self.dropped_jobs:
            if suspect.job in self.dropped_jobs:
                self._finish(suspect.job)
            return  # left unfinished: done on resume
        yield from self._failed_or_poison(suspect, reason, timed_out or 0.0)

    def _empty_handed(self, held: list[Task], how: str, reason: ErrorInfo) -> tuple[Task | None, ErrorInfo]:
        """A worker died holding tasks but none in hand: nothing is charged, unless it keeps
        happening; then the first task it held (the one it ran last) is."""
        self._empty_handed_deaths += 1
        if self._empty_handed_deaths < EMPTY_HANDED_LIMIT:
            return None, reason
        self._empty_handed_deaths = 0
        message = f"{how} with no page in hand, {EMPTY_HANDED_LIMIT} times in a row"
        logger.warning("{}: workers die after their page, {} times in a row; charged to this page",
                       held[0].where(), EMPTY_HANDED_LIMIT)
        return held[0], ErrorInfo("transient", "WorkerDied", message, "")

    def _died_before_ready(self, how: str, fault: str) -> None:
        self._deaths_before_ready += 1
        if self._deaths_before_ready < START_FAILURES or self.critical is not None:
            return
        if fault.startswith("did not start"):
            limit = start_timeout(self.config.page_timeout)
            message = f"workers do not start within {limit:g} s: a plugin may hang at import"
        else:
            message = f"workers die at start ({how})"
        self.critical = ErrorInfo("critical", "WorkerStartError", message, "start")
        logger.error("{}", message)

    def _failed_or_poison(self, task: Task, reason: ErrorInfo, seconds: float) -> Iterator[Event]:
        if task.attempts + 1 >= self.policy.max_attempts:
            task.attempts += 1
            yield AttemptFailed(task.where(), _key(task), task.attempts + task.held_failures, reason, seconds, None)
            what = "page" if task.kind == "page" else "document"
            stage = reason.stage
            if task.lost_in is not None:
                plugin, hook = task.lost_in
                message = f"poison {what}: {reason.message} in {plugin} ({hook}) on each of {task.attempts} attempts"
                stage = STAGE_OF_HOOK.get(hook, stage)
            else:
                message = f"poison {what}: {reason.message} on each of {task.attempts} attempts"
            yield from self._give_up(task, ErrorInfo("permanent", "PoisonPageError", message, stage))
            return
        yield from self._failed(task, reason, seconds)

    def _check_deadlines(self) -> Iterator[Event]:
        for worker, task, elapsed in self.pool.overdue(self.config.page_timeout):
            if worker.slot in self._timeouts:
                continue
            self._timeouts[worker.slot] = elapsed
            logger.warning("{}: running for {:.0f} s, past --page-timeout; killing its worker", task.where(), elapsed)
            self.pool.kill(worker, "page timeout")
        not_started = getattr(self.pool, "not_started", None)
        if not_started is not None:
            limit = start_timeout(self.config.page_timeout)
            for worker in not_started(limit):
                worker.fault = f"did not start within {limit:g} s"
                logger.warning("worker {} (pid {}) has not started within {:g} s (a plugin may hang at import); "
                               "killing it", worker.slot, worker.pid, limit)
                self.pool.kill(worker, "no start in time")
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


__all__ = ["Deaths", "EMPTY_HANDED_LIMIT", "STAGE_OF_HOOK", "START_FAILURES", "start_timeout"]
