"""Retry schedule, error classification, circuit breakers; a plugin that fails 10 times then recovers."""

from __future__ import annotations

import errno
import random

import pytest
from conftest import FAULTS, noop_config

from engine.api import Engine
from engine.errors import (
    CorruptDocumentError,
    CriticalError,
    PoisonPageError,
    TransientError,
)
from engine.retry import BreakerBoard, CircuitBreaker, RetryPolicy, classify_error


def test_backoff_grows_by_factor_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, factor=2.0, max_delay=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_within_its_bounds_and_spreads() -> None:
    policy = RetryPolicy(base_delay=1.0, factor=2.0, max_delay=30.0, jitter=0.25)
    rng = random.Random(7)
    draws = [policy.delay(3, rng) for _ in range(2000)]
    assert min(draws) >= 4.0 * 0.75 and max(draws) <= 4.0 * 1.25
    assert max(draws) - min(draws) > 1.5  # really spread, not constant


def test_max_attempts_and_classes() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry("transient", 1) and policy.should_retry("transient", 2)
    assert not policy.should_retry("transient", 3)
    assert not policy.should_retry("permanent", 1) and not policy.should_retry("critical", 1)


@pytest.mark.parametrize(
    "error, expected",
    [(TimeoutError(), "transient"), (ConnectionResetError(), "transient"), (MemoryError(), "transient"),
     (OSError(errno.EAGAIN, "busy"), "transient"), (OSError(errno.ENOSPC, "full"), "critical"),
     (FileNotFoundError(), "permanent"), (ValueError("bad"), "permanent"), (KeyError("k"), "permanent"),
     (TransientError("x"), "transient"), (CorruptDocumentError("x"), "permanent"), (PoisonPageError("x"), "permanent"),
     (CriticalError("x"), "critical"), (RuntimeError("x"), "permanent")],
)
def test_classification_table(error, expected) -> None:
    assert classify_error(error) == expected


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_transitions() -> None:
    clock = Clock()
    breaker = CircuitBreaker("ocr", threshold=3, reset_seconds=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow() and breaker.state == "half_open"
    assert not breaker.allow()  # one trial at a time
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10.1
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()
    assert [t[1:] for t in breaker.transitions] == [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
                                                    ("open", "half_open"), ("half_open", "closed")]


def test_breaker_does_not_flap_on_isolated_failures() -> None:
    breaker = CircuitBreaker("x", threshold=3, clock=Clock())
    for _ in range(20):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.transitions == []


def test_board_blocks_pages_while_a_breaker_is_open() -> None:
    clock = Clock()
    board = BreakerBoard(threshold=2, reset_seconds=5, clock=clock)
    board.record("ocr", "pagemill_ocr", ok=False)
    assert board.allow_page()
    board.record("ocr", "pagemill_ocr", ok=False)
    assert not board.allow_page() and board.blocked_until() == 105.0
    clock.now = 105.0
    assert board.allow_page() and not board.allow_page()
    board.record(None, None, ok=True)
    assert board.allow_page() and board.counts() == {"opened": 1, "half_opened": 1, "closed": 1}


def test_plugin_failing_ten_times_then_recovering_finishes_every_page(noop_archive, tmp_path) -> None:
    archive = noop_archive([4, 4, 4])
    options = {"fault_kind": "transient", "fault_match": "page", "fault_limit": 10, "fault_state": str(tmp_path / "n")}
    config = noop_config(tmp_path / "out", plugins=(FAULTS,), options=options, breaker_threshold=3,
                         breaker_reset_seconds=0.2, retry_base_delay=0.05, retry_max_delay=0.2)
    engine = Engine(config)
    results = list(engine.process(archive))
    assert (tmp_path / "n").stat().st_size == 10
    assert len(results) == 12 and all(r.status == "ok" for r in results)
    assert engine.last_summary.breaker_events >= 3  # opened, half-opened, closed at least once
    assert engine.last_summary.pages_failed == 0
