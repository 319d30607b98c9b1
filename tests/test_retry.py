"""Retry schedule, error classification, circuit breakers; a plugin that fails 10 times then recovers."""

from __future__ import annotations

import errno
import random
import statistics
import subprocess

import pytest
from conftest import FAULTS, noop_config
from loguru import logger

from engine.api import Engine
from engine.config import EngineConfig
from engine.errors import (
    ConfigError,
    CorruptDocumentError,
    CriticalError,
    EncryptedDocumentError,
    LedgerError,
    PoisonPageError,
    TransientError,
)
from engine.retry import BreakerBoard, CircuitBreaker, RetryPolicy, classify_error


# ------------------------------------------------------------------------------ retry schedule
def test_delays_for_attempts_one_to_five_grow_by_the_factor() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, factor=2.0, max_delay=30.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    tripled = RetryPolicy(base_delay=0.1, factor=3.0, jitter=0.0)
    assert [tripled.delay(n) for n in range(1, 5)] == pytest.approx([0.1, 0.3, 0.9, 2.7])


def test_delay_is_capped_and_never_overflows() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, factor=2.0, max_delay=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(10_000) == 3.0
    assert policy.delay(0) == policy.delay(1) == 0.5


def test_jitter_stays_within_its_documented_bounds_and_spreads() -> None:
    policy = RetryPolicy(base_delay=1.0, factor=2.0, max_delay=30.0, jitter=0.25)
    for attempt, nominal in ((1, 1.0), (3, 4.0), (9, 30.0)):
        draws = [policy.delay(attempt, random.Random(seed)) for seed in range(1500)]
        assert min(draws) >= nominal * 0.75 and max(draws) <= nominal * 1.25
        assert max(draws) - min(draws) > nominal * 0.4  # really spread, not constant
        assert statistics.mean(draws) == pytest.approx(nominal, rel=0.03)


def test_a_seeded_rng_gives_the_same_schedule_and_full_jitter_is_never_negative() -> None:
    policy = RetryPolicy(jitter=1.0)
    first = [policy.delay(n, random.Random(3)) for n in range(1, 6)]
    assert first == [policy.delay(n, random.Random(3)) for n in range(1, 6)]
    rng = random.Random(11)
    assert min(policy.delay(1, rng) for _ in range(2000)) >= 0.0


def test_max_attempts_and_classes() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry("transient", 1) and policy.should_retry("transient", 2)
    assert not policy.should_retry("transient", 3)
    assert not policy.should_retry("permanent", 1) and not policy.should_retry("critical", 1)
    assert not RetryPolicy(max_attempts=1).should_retry("transient", 1)


def test_policy_from_config_and_bad_values() -> None:
    config = EngineConfig(max_attempts=5, retry_base_delay=0.1, retry_factor=3.0, retry_max_delay=7.0,
                          retry_jitter=0.1)
    assert RetryPolicy.from_config(config) == RetryPolicy(5, 0.1, 3.0, 7.0, 0.1)
    for bad in ({"max_attempts": 0}, {"factor": 0.5}, {"jitter": 1.5}, {"base_delay": -1.0}):
        with pytest.raises(ConfigError):
            RetryPolicy(**bad)


# ------------------------------------------------------------------------------ classification
@pytest.mark.parametrize(
    "error, expected",
    [
        (TimeoutError(), "transient"),
        (subprocess.TimeoutExpired("tesseract", 5), "transient"),
        (ConnectionResetError(), "transient"),
        (BrokenPipeError(), "transient"),
        (BlockingIOError(), "transient"),
        (InterruptedError(), "transient"),
        (MemoryError(), "transient"),
        (OSError(errno.EAGAIN, "busy"), "transient"),
        (OSError(errno.EBUSY, "busy"), "transient"),
        (OSError(errno.ENOMEM, "no memory"), "transient"),
        (OSError(errno.EMFILE, "too many files"), "transient"),
        (OSError(errno.ENFILE, "too many files"), "transient"),
        (OSError(errno.ENOSPC, "full"), "critical"),
        (OSError(errno.EDQUOT, "quota"), "critical"),
        (OSError(errno.EIO, "io"), "permanent"),
        (FileNotFoundError(), "permanent"),
        (PermissionError(), "permanent"),
        (ValueError("bad"), "permanent"),
        (KeyError("k"), "permanent"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), "permanent"),
        (RuntimeError("x"), "permanent"),
        (TransientError("x"), "transient"),
        (CorruptDocumentError("x"), "permanent"),
        (EncryptedDocumentError("x"), "permanent"),
        (PoisonPageError("x"), "permanent"),
        (CriticalError("x"), "critical"),
        (LedgerError("x"), "critical"),
    ],
)
def test_classification_table(error, expected) -> None:
    assert classify_error(error) == expected


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("the plugin gave up") from inner
    except RuntimeError as outer:
        return outer


def test_an_unknown_error_takes_the_class_of_its_explicit_cause() -> None:
    assert classify_error(_raised_from(TimeoutError())) == "transient"
    assert classify_error(_raised_from(OSError(errno.ENOSPC, "full"))) == "critical"
    assert classify_error(_raised_from(RuntimeError("still unknown"))) == "permanent"
    try:  # an implicit context (an error while handling another) is not a cause
        try:
            raise TimeoutError()
        except TimeoutError:
            raise RuntimeError("unrelated")
    except RuntimeError as error:
        assert classify_error(error) == "permanent"


# ---------------------------------------------------------------------------- circuit breakers
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
    assert breaker.state == "open" and not breaker.allow() and breaker.retry_at() == 110.0
    clock.now += 9.9
    assert not breaker.allow() and breaker.state == "open"
    clock.now += 0.2
    assert breaker.allow() and breaker.state == "half_open"
    assert not breaker.allow()  # one trial at a time
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow() and breaker.retry_at() == pytest.approx(120.1)
    clock.now += 10.1
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()
    assert [t[1:] for t in breaker.transitions] == [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
                                                    ("open", "half_open"), ("half_open", "closed")]
    assert [t[0] for t in breaker.transitions] == pytest.approx([100.0, 110.1, 110.1, 120.2, 120.2])


def test_breaker_does_not_flap_on_isolated_failures() -> None:
    breaker = CircuitBreaker("x", threshold=3, clock=Clock())
    for _ in range(20):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.transitions == [] and breaker.state == "closed"


def test_late_failures_of_an_open_breaker_do_not_extend_its_pause() -> None:
    clock = Clock()
    breaker = CircuitBreaker("x", threshold=2, reset_seconds=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5
    breaker.record_failure()  # a call that was let through before the breaker opened
    assert breaker.retry_at() == 110.0 and len(breaker.transitions) == 1
    clock.now = 110.0
    assert breaker.allow() and breaker.state == "half_open"


def test_a_trial_that_never_reports_is_given_again_after_the_pause() -> None:
    clock = Clock()
    breaker = CircuitBreaker("x", threshold=1, reset_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now = 110.0
    assert breaker.allow()
    clock.now = 119.0
    assert not breaker.allow() and breaker.free_at() == 120.0
    clock.now = 120.0
    assert breaker.allow() and not breaker.allow()
    assert breaker.state == "half_open"


def test_breaker_changes_are_logged() -> None:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="INFO", format="{message}")
    try:
        clock = Clock()
        breaker = CircuitBreaker("tesseract.pagemill_ocr", threshold=1, reset_seconds=1, clock=clock)
        breaker.record_failure()
        clock.now += 1
        breaker.allow()
        breaker.record_success()
    finally:
        logger.remove(sink)
    assert len(lines) == 3 and all("tesseract.pagemill_ocr" in line for line in lines)
    assert "closed → open" in lines[0] and "open → half_open" in lines[1] and "half_open → closed" in lines[2]


def test_board_blocks_pages_while_a_breaker_is_open() -> None:
    clock = Clock()
    board = BreakerBoard(threshold=2, reset_seconds=5, clock=clock)
    assert board.allow_page() and board.blocked_until() is None
    board.record("ocr", "pagemill_ocr", ok=False)
    assert board.allow_page()
    board.record("ocr", "pagemill_ocr", ok=False)
    assert not board.allow_page() and board.blocked_until() == 105.0
    clock.now = 105.0
    assert board.allow_page() and not board.allow_page()
    board.record(None, None, ok=True)
    assert board.allow_page() and board.blocked_until() is None
    assert board.counts() == {"opened": 1, "half_opened": 1, "closed": 1}


def test_board_takes_no_trial_for_a_page_another_breaker_holds_back() -> None:
    clock = Clock()
    board = BreakerBoard(threshold=1, reset_seconds=10, clock=clock)
    board.record("ocr", "pagemill_ocr", ok=False)  # half-opens at 110
    clock.now = 104.0
    board.record("extract", "pagemill_extract", ok=False)  # half-opens at 114
    clock.now = 110.0
    assert not board.allow_page() and board.blocked_until() == 114.0
    assert board.get("ocr", "pagemill_ocr").state == "half_open"
    clock.now = 114.0
    assert board.allow_page()  # one page is the trial for both
    assert not board.allow_page()
    board.record(None, None, ok=True)
    assert {b.state for b in board.breakers.values()} == {"closed"}


def test_board_keeps_an_open_breaker_open_when_an_earlier_page_succeeds() -> None:
    clock = Clock()
    board = BreakerBoard(threshold=2, reset_seconds=10, clock=clock)
    board.record("ocr", "pagemill_ocr", ok=False)
    board.record(None, None, ok=True)  # a success between failures: not consecutive any more
    board.record("ocr", "pagemill_ocr", ok=False)
    assert board.get("ocr", "pagemill_ocr").state == "closed"
    board.record("ocr", "pagemill_ocr", ok=False)
    assert board.get("ocr", "pagemill_ocr").state == "open"
    clock.now += 3
    board.record(None, None, ok=True)  # a text-layer page sent before the breaker opened
    assert board.get("ocr", "pagemill_ocr").state == "open" and not board.allow_page()
    clock.now += 7
    assert board.allow_page()
    board.record(None, None, ok=True)
    assert board.get("ocr", "pagemill_ocr").state == "closed"


def test_board_success_of_a_named_hook_closes_only_its_breaker() -> None:
    clock = Clock()
    board = BreakerBoard(threshold=1, reset_seconds=1, clock=clock)
    board.record("ocr", "pagemill_ocr", ok=False)
    board.record("extract", "pagemill_extract", ok=False)
    board.record("ocr", "pagemill_ocr", ok=True)
    assert board.get("ocr", "pagemill_ocr").state == "closed"
    assert board.get("extract", "pagemill_extract").state == "open"
    board.record("unknown_plugin", "pagemill_ocr", ok=True)  # no breaker: nothing to create
    assert len(board.breakers) == 2
    board.record(None, None, ok=False)
    assert board.get("unknown", "unknown").failures == 1


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


def test_board_counts_state_changes_per_breaker() -> None:
    clock = Clock()
    board = BreakerBoard(threshold=1, reset_seconds=1, clock=clock)
    board.record("tesseract", "pagemill_ocr", ok=False)
    clock.now += 1
    assert board.get("tesseract", "pagemill_ocr").allow()
    board.record("tesseract", "pagemill_ocr", ok=True)
    board.record("extract", "pagemill_extract", ok=False)
    board.get("quiet", "pagemill_validate")  # never changed state: not listed
    assert board.by_breaker() == {
        "tesseract.pagemill_ocr": {"opened": 1, "half_opened": 1, "closed": 1},
        "extract.pagemill_extract": {"opened": 1, "half_opened": 0, "closed": 0},
    }
    assert board.counts() == {"opened": 2, "half_opened": 1, "closed": 1}


def test_a_trial_handed_back_frees_the_breaker_for_another() -> None:
    clock = Clock()
    breaker = CircuitBreaker("x", threshold=1, reset_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now = 110.0
    assert breaker.allow() and not breaker.allow()
    breaker.release_trial()
    assert breaker.allow()
