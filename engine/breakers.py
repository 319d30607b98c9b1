"""Circuit breakers, one per plugin and hook, kept in the parent (the state machines only).

closed → open after ``threshold`` consecutive failures of that plugin's hook → half_open once
``reset_seconds`` have passed (one trial call goes) → closed on a successful call, open again on
a failed trial. How a breaker's state reaches the calls (a call of an open breaker's plugin fails
fast as a transient :class:`CircuitOpenError`, other calls go on) is :mod:`engine.gates`.

What counts for a breaker (engine.outcomes): a transient error raised by the plugin's hook; a
page timeout, or a worker that died, while the plugin's hook was running (the worker's progress
slot names it), on the page's first attempt only: a page that keeps killing its worker is that
page's fault (it ends as poison), while a systemic failure shows on fresh pages. Permanent and
critical errors say nothing about the plugin's health, and a worker that died between calls
counts for no breaker. A successful call of the plugin's hook resets the count of consecutive
failures and closes a half-open breaker.

A breaker whose trials keep failing (``GIVE_UP_AFTER_TRIALS`` in a row, and open for
``give_up_seconds`` at least: ``breaker_give_up``, 600 by default, so that a service that is down
for a few minutes is still waited for) is *exhausted*: once nothing else is left to run
(engine.outcomes), the pages it holds back end as failed records (transient: ``--retry-failed``
does them again) rather than waiting one pause after another; it still lets one trial through
after each pause, and a trial that succeeds closes it as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from loguru import logger

from engine.errors import ConfigError, TransientError

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
GIVE_UP_AFTER_TRIALS = 3  # failed trials in a row after which a breaker's held pages fail ...
GIVE_UP_AFTER_SECONDS = 600.0  # ... once it has also been open this long (the default of breaker_give_up)
_COUNT_NAMES = {OPEN: "opened", HALF_OPEN: "half_opened", CLOSED: "closed"}


class CircuitOpenError(TransientError):
    """A call skipped because its plugin's circuit breaker is open: the page waits for it."""


class CircuitBreaker:
    """closed → open after ``threshold`` consecutive failures → half_open once ``reset_seconds``
    have passed (one trial goes) → closed on the trial's success, open again on its failure.

    A trial that never reports (its page failed for another reason, or was lost with its worker)
    does not hold the breaker forever: after another ``reset_seconds`` a new trial may go, or
    sooner when the trial is handed back (``release_trial``).
    """

    def __init__(self, name: str, threshold: int = 5, reset_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, give_up_seconds: float = GIVE_UP_AFTER_SECONDS) -> None:
        if threshold < 1:
            raise ConfigError(f"breaker threshold must be at least 1, not {threshold}")
        self.name = name
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.give_up_seconds = give_up_seconds
        self.clock = clock
        self.failures = 0  # consecutive
        self.failed_trials = 0  # consecutive trials that failed
        self.open_since = ""  # UTC time it opened, while it has not closed since
        self._first_opened_at = 0.0  # clock time of that opening
        self.transitions: list[tuple[float, str, str]] = []
        self._state = CLOSED
        self._opened_at = 0.0
        self._trial_since: float | None = None

    @property
    def state(self) -> str:
        return self._state

    @property
    def exhausted(self) -> bool:
        """Its last ``GIVE_UP_AFTER_TRIALS`` trials all failed and it has not closed for
        ``give_up_seconds``: pages it holds back may be failed."""
        return (self.failed_trials >= GIVE_UP_AFTER_TRIALS and self._state != CLOSED
                and self.clock() - self._first_opened_at >= self.give_up_seconds)

    def _move(self, state: str) -> None:
        if state == self._state:
            return
        now = self.clock()
        self.transitions.append((now, self._state, state))
        log = logger.warning if state == OPEN else logger.info
        log("circuit breaker {}: {} → {}{}", self.name, self._state, state,
            f" after {self.failures} consecutive failures" if state == OPEN and self._state == CLOSED else "")
        if state == OPEN and self._state == CLOSED:
            self.open_since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._first_opened_at = now
        elif state == CLOSED:
            self.open_since = ""
        self._state = state

    def _half_open_if_due(self) -> None:
        if self._state == OPEN and self.clock() >= self.retry_at():
            self._move(HALF_OPEN)
            self._trial_since = None

    def _trial_free(self) -> bool:
        return self._trial_since is None or self.clock() - self._trial_since >= self.reset_seconds

    def would_allow(self) -> bool:
        """What ``allow()`` would answer, without taking the half-open trial."""
        self._half_open_if_due()
        if self._state == CLOSED:
            return True
        return self._state == HALF_OPEN and self._trial_free()

    def allow(self) -> bool:
        """Whether a call may go now; in half_open this takes the single trial."""
        if not self.would_allow():
            return False
        if self._state == HALF_OPEN:
            self._trial_since = self.clock()
        return True

    def release_trial(self) -> None:
        """The trial came back without calling the plugin: another call may be the trial now."""
        if self._state == HALF_OPEN:
            self._trial_since = None

    def record_success(self) -> None:
        self.failures = 0
        self.failed_trials = 0
        self._trial_since = None
        self._move(CLOSED)

    def record_failure(self, trial: bool | None = None) -> None:
        """A failure of the plugin's call; ``trial``: whether that call was the half-open trial
        (None: not known, then any failure while half-open is taken for the trial's)."""
        self.failures += 1
        if self._state != CLOSED and (trial or (trial is None and self._state == HALF_OPEN)):
            self.failed_trials += 1
        if self._state == OPEN:
            return  # a call let through before the breaker opened: the pause is not extended
        if self._state == HALF_OPEN or self.failures >= self.threshold:
            self._opened_at = self.clock()
            self._trial_since = None
            self._move(OPEN)

    def retry_at(self) -> float:
        """The clock time at which an open breaker half-opens."""
        return self._opened_at + self.reset_seconds

    def free_at(self) -> float | None:
        """When this breaker lets a call go (None: now)."""
        if self.would_allow():
            return None
        if self._state == OPEN:
            return self.retry_at()
        assert self._trial_since is not None
        return self._trial_since + self.reset_seconds

    def counts(self) -> dict[str, int]:
        """How many times it opened, half-opened and closed."""
        counts = dict.fromkeys(_COUNT_NAMES.values(), 0)
        for _, _, state in self.transitions:
            counts[_COUNT_NAMES[state]] += 1
        return counts


class BreakerBoard:
    """The breakers of a run, one per (plugin, hook), created on first use.

    ``allow_page`` and ``record(None, None, ...)`` serve an executor that cannot gate single
    plugin calls (engine.gates is the precise way): there a page may be dispatched only while
    every breaker allows it, and when some are half-open that one page is the trial for all.
    """

    def __init__(self, threshold: int = 5, reset_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, give_up_seconds: float = GIVE_UP_AFTER_SECONDS) -> None:
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.give_up_seconds = give_up_seconds
        self.breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, plugin: str, hook: str) -> CircuitBreaker:
        key = (plugin, hook)
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(f"{plugin}.{hook}", self.threshold, self.reset_seconds, self.clock,
                                     self.give_up_seconds)
            self.breakers[key] = breaker
        return breaker

    def _tripped(self) -> list[CircuitBreaker]:
        return [breaker for breaker in self.breakers.values() if breaker.state != CLOSED]

    def allow_page(self) -> bool:
        """Whether a page may be dispatched now. No trial is taken unless the page may go."""
        tripped = self._tripped()
        if not all(breaker.would_allow() for breaker in tripped):
            return False
        for breaker in tripped:
            breaker.allow()
        return True

    def blocked_until(self) -> float | None:
        """The earliest clock time a page may go, or None when no breaker holds pages back."""
        times = [free for free in (b.free_at() for b in self._tripped()) if free is not None]
        return max(times) if times else None

    def record(self, plugin: str | None, hook: str | None, ok: bool) -> None:
        """A stage's outcome, or with no plugin named a whole page's success.

        A page's success is a success for every breaker that is closed (its count of consecutive
        failures starts again) or on trial (it closes); an open breaker stays open until its
        pause ends and a trial page succeeds — the page that succeeded was sent before it opened.
        """
        if ok:
            if plugin is not None and hook is not None:
                if (plugin, hook) in self.breakers:
                    self.breakers[(plugin, hook)].record_success()
                return
            for breaker in self.breakers.values():
                if breaker.state == HALF_OPEN or (breaker.state == CLOSED and breaker.failures):
                    breaker.record_success()
            return
        self.get(plugin or "unknown", hook or "unknown").record_failure()

    def counts(self) -> dict[str, int]:
        """How many times breakers opened, half-opened and closed in this run, all together."""
        counts = dict.fromkeys(_COUNT_NAMES.values(), 0)
        for breaker in self.breakers.values():
            for name, count in breaker.counts().items():
                counts[name] += count
        return counts

    def by_breaker(self) -> dict[str, dict[str, int]]:
        """State changes of each breaker that changed state: ``{"plugin.hook": {"opened": n,
        "half_opened": n, "closed": n}}`` (for report.json)."""
        return {breaker.name: breaker.counts() for breaker in self.breakers.values() if breaker.transitions}


__all__ = ["CLOSED", "GIVE_UP_AFTER_SECONDS", "GIVE_UP_AFTER_TRIALS", "HALF_OPEN", "OPEN", "BreakerBoard", "CircuitBreaker",
           "CircuitOpenError"]
