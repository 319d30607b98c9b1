"""Retries and circuit breakers: the error classification, RetryPolicy, CircuitBreaker, BreakerBoard.

Error classes (DESIGN.md): **transient** errors are retried with exponential backoff and jitter,
**permanent** ones are recorded once and the run goes on, a **critical** one stops the run cleanly.
A plugin may classify its own errors (``pagemill_classify_error``); :func:`classify_error` is the
built-in table used for everything no plugin claimed.

Circuit breakers live in the parent, one per (plugin, hook). After ``threshold`` consecutive
failures a breaker opens and no page is dispatched; after ``reset_seconds`` it half-opens and lets
exactly one trial page go; the trial's success closes it, its failure opens it again.
"""

from __future__ import annotations

import errno
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from engine.errors import ConfigError, PagemillError

if TYPE_CHECKING:
    from engine.config import EngineConfig

TRANSIENT = "transient"
PERMANENT = "permanent"
CRITICAL = "critical"

#: OSError errnos that stop the run: the disk (or the user's quota) is full. Checked first.
CRITICAL_ERRNOS: frozenset[int] = frozenset({errno.ENOSPC, errno.EDQUOT})
#: OSError errnos that say "try again later": a busy or exhausted resource.
TRANSIENT_ERRNOS: frozenset[int] = frozenset({errno.EAGAIN, errno.EBUSY, errno.ENOMEM, errno.EMFILE, errno.ENFILE})

#: The built-in classification, read top to bottom; the first row whose exception type matches
#: wins. pagemill's own errors (``engine.errors``) carry their class in ``error_class`` and are
#: taken before this table; an OSError whose errno is in CRITICAL_ERRNOS or TRANSIENT_ERRNOS is
#: classified by its errno before it. Anything that matches no row is **permanent**, unless it was
#: raised ``from`` another exception (``__cause__``), which is then classified the same way.
#:
#: MemoryError is transient: a page that ran out of memory next to other big pages usually fits
#: once it runs again (and a worker that grew too much is recycled meanwhile). A full disk is
#: critical: no page can be finished until someone frees space.
CLASSIFICATION: tuple[tuple[type[BaseException], str], ...] = (
    (TimeoutError, TRANSIENT),  # includes socket.timeout and concurrent.futures.TimeoutError
    (subprocess.TimeoutExpired, TRANSIENT),  # an external program (tesseract) ran past its time
    (ConnectionError, TRANSIENT),  # BrokenPipe, ConnectionReset/Refused/Aborted
    (BlockingIOError, TRANSIENT),  # EAGAIN / EWOULDBLOCK
    (InterruptedError, TRANSIENT),  # EINTR
    (MemoryError, TRANSIENT),
    (FileNotFoundError, PERMANENT),  # the file went away: retrying will not bring it back
    (PermissionError, PERMANENT),
    (IsADirectoryError, PERMANENT),
    (UnicodeError, PERMANENT),
    (ValueError, PERMANENT),
    (KeyError, PERMANENT),
)

_CAUSE_DEPTH = 5  # how far down a chain of ``raise ... from ...`` the classification looks


def classify_error(error: BaseException) -> str:
    """"transient", "permanent" or "critical" for an exception no plugin classified (see CLASSIFICATION)."""
    for _ in range(_CAUSE_DEPTH):
        found = _classify_one(error)
        if found is not None:
            return found
        cause = error.__cause__
        if cause is None:
            break
        error = cause
    return PERMANENT


def _classify_one(error: BaseException) -> str | None:
    if isinstance(error, PagemillError):
        return error.error_class
    if isinstance(error, OSError) and error.errno is not None:
        if error.errno in CRITICAL_ERRNOS:
            return CRITICAL
        if error.errno in TRANSIENT_ERRNOS:
            return TRANSIENT
    for kind, error_class in CLASSIFICATION:
        if isinstance(error, kind):
            return error_class
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a page that failed with a transient error is tried again.

    The wait after failed attempt ``n`` (1-based) is ``min(max_delay, base_delay × factor^(n-1))``
    multiplied by a uniform draw from ``[1 - jitter, 1 + jitter]``: with the defaults, attempt 1 →
    0.375–0.625 s, attempt 2 → 0.75–1.25 s, and a capped wait lies in
    ``[max_delay × (1 - jitter), max_delay × (1 + jitter)]``. Never negative.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ConfigError("retry delays cannot be negative")
        if self.factor < 1:
            raise ConfigError(f"retry factor must be at least 1, not {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"retry jitter must be between 0 and 1, not {self.jitter}")

    @classmethod
    def from_config(cls, config: EngineConfig) -> RetryPolicy:
        return cls(
            max_attempts=config.max_attempts,
            base_delay=config.retry_base_delay,
            factor=config.retry_factor,
            max_delay=config.retry_max_delay,
            jitter=config.retry_jitter,
        )

    def nominal_delay(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` before jitter: base × factor^(attempt-1), capped."""
        try:
            grown = self.base_delay * self.factor ** max(0, attempt - 1)
        except OverflowError:
            grown = float("inf")
        return min(self.max_delay, grown)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), jitter included."""
        spread = (rng or random).uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        return max(0.0, self.nominal_delay(attempt) * (1.0 + spread))

    def should_retry(self, error_class: str, attempt: int) -> bool:
        """Whether a page whose attempt number ``attempt`` failed with ``error_class`` goes again."""
        return error_class == TRANSIENT and attempt < self.max_attempts


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """closed → open after ``threshold`` consecutive failures → half_open once ``reset_seconds``
    have passed (one trial goes) → closed on the trial's success, open again on its failure.

    A trial that never reports (its page failed for another reason, or was lost with its worker)
    does not hold the breaker forever: after another ``reset_seconds`` a new trial may go.
    """

    def __init__(self, name: str, threshold: int = 5, reset_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1:
            raise ConfigError(f"breaker threshold must be at least 1, not {threshold}")
        self.name = name
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.failures = 0  # consecutive
        self.transitions: list[tuple[float, str, str]] = []
        self._state = CLOSED
        self._opened_at = 0.0
        self._trial_since: float | None = None

    @property
    def state(self) -> str:
        return self._state

    def _move(self, state: str) -> None:
        if state == self._state:
            return
        now = self.clock()
        self.transitions.append((now, self._state, state))
        log = logger.warning if state == OPEN else logger.info
        log("circuit breaker {}: {} → {}{}", self.name, self._state, state,
            f" after {self.failures} consecutive failures" if state == OPEN and self._state == CLOSED else "")
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

    def record_success(self) -> None:
        self.failures = 0
        self._trial_since = None
        self._move(CLOSED)

    def record_failure(self) -> None:
        self.failures += 1
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


class BreakerBoard:
    """The breakers of a run, one per (plugin, hook), created on first use.

    A page runs every stage, so a page may be dispatched only while every breaker allows it; when
    some are half-open, that one page is the trial for all of them.
    """

    def __init__(self, threshold: int = 5, reset_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, plugin: str, hook: str) -> CircuitBreaker:
        key = (plugin, hook)
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(f"{plugin}.{hook}", self.threshold, self.reset_seconds, self.clock)
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
        """How many times breakers opened, half-opened and closed in this run (for report.json)."""
        names = {OPEN: "opened", HALF_OPEN: "half_opened", CLOSED: "closed"}
        counts = dict.fromkeys(names.values(), 0)
        for breaker in self.breakers.values():
            for _, _, state in breaker.transitions:
                counts[names[state]] += 1
        return counts
