"""Retries: the error classification and RetryPolicy (circuit breakers: engine.breakers).

Error classes (DESIGN.md): **transient** errors are retried with exponential backoff and jitter,
**permanent** ones are recorded once and the run goes on, a **critical** one stops the run cleanly.
A plugin may classify its own errors (``pagemill_classify_error``); :func:`classify_error` is the
built-in table used for everything no plugin claimed.

Circuit breakers (``CircuitBreaker``, ``BreakerBoard``) are in :mod:`engine.breakers` and
importable from here.
"""

from __future__ import annotations

import errno
import random
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

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


from engine.breakers import (  # noqa: E402 - kept importable from here
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerBoard,
    CircuitBreaker,
    CircuitOpenError,
)

__all__ = [
    "CLOSED", "CRITICAL", "HALF_OPEN", "OPEN", "PERMANENT", "TRANSIENT", "BreakerBoard", "CircuitBreaker",
    "CircuitOpenError", "RetryPolicy", "classify_error",
]
