"""Retries and circuit breakers: RetryPolicy, the built-in error classification, CircuitBreaker.

Error classes (DESIGN.md): **transient** errors are retried with exponential backoff and jitter,
**permanent** ones are recorded once, a **critical** one stops the run cleanly.
"""

from __future__ import annotations

import errno
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from loguru import logger

from engine.errors import PagemillError

#: OSError errnos that say "try again later" (a busy or exhausted resource).
TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EBUSY, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EINTR,
                              errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED})
#: OSError errnos that stop the run: the disk is full.
CRITICAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

#: The built-in table, first match wins (after pagemill's own error classes).
CLASSIFICATION: tuple[tuple[type[BaseException], str], ...] = (
    (TimeoutError, "transient"),
    (ConnectionError, "transient"),
    (BlockingIOError, "transient"),
    (InterruptedError, "transient"),
    (MemoryError, "transient"),
    (FileNotFoundError, "permanent"),
    (PermissionError, "permanent"),
)


def classify_error(error: BaseException) -> str:
    """transient, permanent or critical, for an exception no plugin classified."""
    if isinstance(error, PagemillError):
        return error.error_class
    for kind, error_class in CLASSIFICATION:
        if isinstance(error, kind):
            return error_class
    if isinstance(error, OSError) and error.errno is not None:
        if error.errno in CRITICAL_ERRNOS:
            return "critical"
        if error.errno in TRANSIENT_ERRNOS:
            return "transient"
    return "permanent"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.25

    @classmethod
    def from_config(cls, config: Any) -> RetryPolicy:
        return cls(config.max_attempts, config.retry_base_delay, config.retry_factor, config.retry_max_delay,
                   config.retry_jitter)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): base × factor^(attempt-1),
        capped at max_delay, then spread uniformly over ± jitter × that value."""
        nominal = min(self.max_delay, self.base_delay * self.factor ** max(0, attempt - 1))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, nominal * (1.0 + spread))

    def should_retry(self, error_class: str, attempt: int) -> bool:
        return error_class == "transient" and attempt < self.max_attempts


class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive failures → half-open after ``reset_seconds``
    (one trial) → closed on success, open again on failure."""

    def __init__(self, name: str, threshold: int = 5, reset_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.trial_out = False
        self.transitions: list[tuple[float, str, str]] = []

    def _move(self, state: str) -> None:
        if state != self.state:
            self.transitions.append((self.clock(), self.state, state))
            logger.warning("circuit breaker {}: {} → {}", self.name, self.state, state)
            self.state = state

    def allow(self) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open":
            if self.clock() - self.opened_at < self.reset_seconds:
                return False
            self._move("half_open")
            self.trial_out = False
        if self.trial_out:
            return False
        self.trial_out = True
        return True

    def record_success(self) -> None:
        self.failures = 0
        self.trial_out = False
        self._move("closed")

    def record_failure(self) -> None:
        self.failures += 1
        self.trial_out = False
        if self.state == "half_open" or self.failures >= self.threshold:
            self.opened_at = self.clock()
            self._move("open")

    def retry_at(self) -> float:
        return self.opened_at + self.reset_seconds


class BreakerBoard:
    """The breakers of a run, one per (plugin, hook), created on first failure."""

    def __init__(self, threshold: int = 5, reset_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, plugin: str, hook: str) -> CircuitBreaker:
        key = (plugin, hook)
        if key not in self.breakers:
            self.breakers[key] = CircuitBreaker(f"{plugin}.{hook}", self.threshold, self.reset_seconds, self.clock)
        return self.breakers[key]

    def allow_page(self) -> bool:
        """Whether a page may be dispatched now; in half-open, exactly one trial goes."""
        return all(breaker.allow() for breaker in self.breakers.values() if breaker.state != "closed")

    def blocked_until(self) -> float | None:
        times = [b.retry_at() for b in self.breakers.values() if b.state == "open"]
        return min(times) if times else None

    def record(self, plugin: str | None, hook: str | None, ok: bool) -> None:
        if ok:
            for breaker in self.breakers.values():
                if breaker.state != "closed" or breaker.failures:
                    breaker.record_success()
            return
        self.get(plugin or "unknown", hook or "unknown").record_failure()

    def counts(self) -> dict[str, int]:
        counts = {"opened": 0, "half_opened": 0, "closed": 0}
        for breaker in self.breakers.values():
            for _, _, state in breaker.transitions:
                counts[{"open": "opened", "half_open": "half_opened", "closed": "closed"}[state]] += 1
        return counts
