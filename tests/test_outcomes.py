"""What the scheduler makes of deaths, breaker failures, ingests and start-up (no processes: a pool
stand-in and a fake clock)."""

from __future__ import annotations

import pytest
from loguru import logger
from outcome_stub import answer, deliver, died, ingest, page, scheduler

from engine.breakers import GIVE_UP_AFTER_SECONDS, GIVE_UP_AFTER_TRIALS

GIVE_UP_SECONDS = 30.0  # breaker_give_up in these tests
from engine.config import EngineConfig
from engine.deaths import start_timeout
from engine.errors import ConfigError
from engine.events import AttemptFailed, DocumentFailed, DocumentOpened, PageFinished
from engine.pipeline import StageFailure
from engine.records import ErrorInfo, PageTask
from engine.scaling import FakeProbe, ResourceProbe

OCR = ("ocrplug", "pagemill_ocr")
INGEST = ("ingestplug", "pagemill_ingest")
KEYS = [INGEST, ("plugins.noop", "pagemill_ingest"), OCR]
OCR_CALL = 2


def lines_at(level: str) -> tuple[list[str], int]:
    lines: list[str] = []
    return lines, logger.add(lambda m: lines.append(m.record["message"]), level=level)


# ------------------------------------------------------------------ a worker dying with nothing in hand
def test_a_worker_that_keeps_dying_with_nothing_in_hand_has_its_first_task_charged() -> None:
    sched, pool, _ = scheduler()
    first, waiting = page(index=0), page(index=1)
    events = deliver(sched, died(pool.worker(0, first, waiting)))  # the answer was lost after the page was done
    assert events == [] and first.attempts == 0 and waiting.attempts == 0  # the first time: nothing charged
    assert len(sched.queue) == 2
    sched.queue.pop(), sched.queue.pop()
    events = deliver(sched, died(pool.worker(1, first)))  # the same page, again
    failed = [e for e in events if isinstance(e, AttemptFailed)]
    assert first.attempts == 1 and len(failed) == 1
    assert "no page in hand" in failed[0].error.message
    assert len(sched.timers) == 1  # retried under the retry policy, so it ends as poison at the latest


def test_a_death_with_a_page_in_hand_resets_the_count_of_empty_handed_deaths() -> None:
    sched, pool, _ = scheduler()
    first, other = page(index=0), page(index=1)
    deliver(sched, died(pool.worker(0, first)))
    deliver(sched, died(pool.worker(1, other, in_hand=other)))
    sched.queue.pop()
    deliver(sched, died(pool.worker(0, first)))
    assert first.attempts == 0 and other.attempts == 1


def test_a_worker_ended_for_an_unreadable_message_is_named_in_the_failure() -> None:
    sched, pool, _ = scheduler()
    task = page()
    worker = pool.worker(0, task, in_hand=task)
    worker.fault = "sent a message that cannot be read (UnicodeDecodeError: invalid start byte)"
    events = deliver(sched, died(worker))
    assert [e.error.message for e in events if isinstance(e, AttemptFailed)] == [
        "worker sent a message that cannot be read (UnicodeDecodeError: invalid start byte)"]


def test_a_poison_page_names_the_plugin_and_hook_its_worker_died_in() -> None:
    sched, pool, _ = scheduler(keys=KEYS, breaker_threshold=10)
    task = page(index=3)
    final = []
    for attempt in range(3):
        final = deliver(sched, died(pool.worker(attempt, task, in_hand=task, plugin=OCR_CALL), exitcode=-11))
        sched.timers.drain()
    done = [e for e in final if isinstance(e, PageFinished)]
    assert len(done) == 1
    error = done[0].result.error
    assert error.type == "PoisonPageError"
    assert error.message == "poison page: worker killed by SIGSEGV in ocrplug (pagemill_ocr) on each of 3 attempts"
    assert error.stage == "ocr"


def test_a_poison_page_killed_between_calls_keeps_the_plugin_it_was_last_seen_in() -> None:
    sched, pool, _ = scheduler(keys=KEYS, breaker_threshold=10)
    task = page(index=4)
    final = []
    for attempt, call in enumerate((OCR_CALL, -1, -1)):
        final = deliver(sched, died(pool.worker(attempt, task, in_hand=task, plugin=call), exitcode=3))
        sched.timers.drain()
    error = next(e for e in final if isinstance(e, PageFinished)).result.error
    assert error.message == "poison page: worker exited with code 3 in ocrplug (pagemill_ocr) on each of 3 attempts"


# ------------------------------------------------------------------------------ circuit breakers
def test_deaths_of_retried_pages_do_not_feed_the_breaker_but_first_attempts_do() -> None:
    sched, pool, _ = scheduler(keys=KEYS)
    retry = page(attempts=1)
    deliver(sched, died(pool.worker(0, retry, in_hand=retry, plugin=OCR_CALL)))
    assert sched.gates.breaker(OCR).state == "closed" and sched.gates.breaker(OCR).failures == 0
    fresh = page(index=1)
    deliver(sched, died(pool.worker(1, fresh, in_hand=fresh, plugin=OCR_CALL)))
    assert sched.gates.breaker(OCR).state == "open"


def test_the_trial_goes_to_a_page_that_has_not_failed_before() -> None:
    sched, _, clock = scheduler(keys=KEYS)
    sched.gates.failure(OCR)
    poison, fresh = page(index=0, attempts=2), page(index=1)
    sched.gates.hold(OCR, poison)
    sched.gates.hold(OCR, fresh)
    clock.now += 10
    released = sched.gates.release(lambda task: not sched._failed_before(task))
    assert released == [fresh] and fresh.trial and not poison.trial
    clock.now += 1
    assert sched.gates.release(lambda task: not sched._failed_before(task)) == []  # one trial at a time


def test_a_trial_whose_retried_page_dies_hands_the_trial_on_at_once() -> None:
    sched, pool, clock = scheduler(keys=KEYS)
    sched.gates.failure(OCR)
    poison = page(attempts=1)
    sched.gates.hold(OCR, poison)
    clock.now += 10
    assert sched.gates.release() == [poison]
    deliver(sched, died(pool.worker(0, poison, in_hand=poison, plugin=OCR_CALL)))
    breaker = sched.gates.breaker(OCR)
    assert breaker.state == "half_open" and breaker.failed_trials == 0
    assert breaker.free_at() is None  # another page may be the trial now, not a pause later


def ocr_failure(message: str = "service down") -> StageFailure:
    return StageFailure(ErrorInfo("transient", "TimeoutError", message, "ocr"), "ocrplug", "pagemill_ocr", 0.1)


def test_a_breaker_whose_trials_keep_failing_fails_the_pages_it_holds() -> None:
    sched, pool, clock = scheduler(keys=KEYS, breaker_give_up=GIVE_UP_SECONDS)
    sched.gates.failure(OCR)  # opens (threshold 1)
    held = [page(index=i) for i in range(4)]
    for task in held:
        sched.gates.hold(OCR, task)
    finished = []
    trials = 0
    while len(finished) < len(held) and trials < 10:
        clock.now += 10
        trial = sched.gates.release(lambda task: not sched._failed_before(task))
        assert len(trial) == 1
        trials += 1
        worker = pool.worker(0, trial[0], in_hand=trial[0], plugin=OCR_CALL)
        events = deliver(sched, answer(worker, trial[0], "failure", ocr_failure(), failed=OCR_CALL))
        finished += [e for e in events if isinstance(e, PageFinished)]
    assert trials == max(GIVE_UP_AFTER_TRIALS, int(GIVE_UP_SECONDS // 10))
    assert sched.gates.held_count == 0 and len(finished) == 4
    for event in finished:
        error = event.result.error
        assert event.result.status == "failed" and error.error_class == "transient"
        assert error.type == "CircuitOpenError"
        assert error.message.startswith("plugin ocrplug: pagemill_ocr failing, circuit open since ")
    # a page that reaches the breaker after it gave up fails at once, unless it can be the next trial
    late, later = page(index=8), page(index=9)
    skipped = StageFailure(ErrorInfo("transient", "CircuitOpenError", "circuit breaker is open", "ocr"),
                           "ocrplug", "pagemill_ocr", 0.0)
    events = deliver(sched, answer(pool.worker(1, late), late, "failure", skipped, failed=OCR_CALL))
    assert [e.result.error.type for e in events if isinstance(e, PageFinished)] == ["CircuitOpenError"]
    clock.now += 10  # the pause is over: the next page that reaches it is kept for the trial
    events = deliver(sched, answer(pool.worker(1, later), later, "failure", skipped, failed=OCR_CALL))
    assert not [e for e in events if isinstance(e, PageFinished)] and sched.gates.held_count == 1


def fail_trials(sched, pool, clock, trials: int) -> list[PageFinished]:
    """``trials`` trials of the OCR breaker, each failing, 10 s apart; the pages that ended."""
    finished = []
    for _ in range(trials):
        clock.now += 10
        trial = sched.gates.release(lambda task: not sched._failed_before(task))
        assert len(trial) == 1
        worker = pool.worker(0, trial[0], in_hand=trial[0], plugin=OCR_CALL)
        events = deliver(sched, answer(worker, trial[0], "failure", ocr_failure(), failed=OCR_CALL))
        finished += [e for e in events if isinstance(e, PageFinished)]
    return finished


def test_a_breaker_gives_up_only_after_breaker_give_up_seconds_open() -> None:
    sched, pool, clock = scheduler(keys=KEYS, breaker_give_up=120)
    sched.gates.failure(OCR)
    for index in range(3):
        sched.gates.hold(OCR, page(index=index))
    assert fail_trials(sched, pool, clock, 11) == []  # 110 s open, 11 trials failed: still waited for
    finished = fail_trials(sched, pool, clock, 1)  # 120 s
    assert len(finished) == 3 and sched.gates.held_count == 0
    assert GIVE_UP_AFTER_SECONDS == 600 and EngineConfig(load_entry_points=False).breaker_give_up == 600


def test_an_exhausted_breaker_holds_its_pages_while_other_work_remains() -> None:
    sched, pool, clock = scheduler(keys=KEYS, breaker_give_up=GIVE_UP_SECONDS)
    sched.gates.failure(OCR)
    for index in range(3):
        sched.gates.hold(OCR, page(index=index))
    other = page("other.pdf")
    sched.queue.push(other)  # a page that needs no OCR, still to run
    assert fail_trials(sched, pool, clock, 6) == []  # exhausted, but other work remains: the pages wait
    assert sched.gates.breaker(OCR).exhausted and sched.gates.held_count == 3
    skipped = StageFailure(ErrorInfo("transient", "CircuitOpenError", "circuit breaker is open", "ocr"),
                           "ocrplug", "pagemill_ocr", 0.0)
    late = page(index=7)
    events = deliver(sched, answer(pool.worker(1, late), late, "failure", skipped, failed=OCR_CALL))
    assert not [e for e in events if isinstance(e, PageFinished)]  # one more page reaching it waits too
    assert sched.queue.pop() is other  # the other page runs and is done
    finished = fail_trials(sched, pool, clock, 1)  # nothing else is left: the next failed trial gives up
    assert len(finished) == 4 and sched.gates.held_count == 0


def test_a_breaker_that_recovers_lets_every_held_page_go() -> None:
    sched, pool, clock = scheduler(keys=KEYS)
    sched.gates.failure(OCR)
    held = [page(index=i) for i in range(3)]
    for task in held:
        sched.gates.hold(OCR, task)
    for _ in range(GIVE_UP_AFTER_TRIALS - 1):  # failed trials, but not enough to give up
        clock.now += 10
        trial = sched.gates.release()
        worker = pool.worker(0, trial[0], in_hand=trial[0], plugin=OCR_CALL)
        deliver(sched, answer(worker, trial[0], "failure", ocr_failure(), failed=OCR_CALL))
    clock.now += 10
    trial = sched.gates.release()
    result = _result(trial[0].payload)
    deliver(sched, answer(pool.worker(0, trial[0]), trial[0], "result", result, called=1 << OCR_CALL))
    assert sched.gates.breaker(OCR).state == "closed"
    assert len(sched.gates.release()) == 2 and sched.gates.held_count == 0


def _result(payload: PageTask):
    from engine.records import PageResult

    return PageResult(payload.document, payload.sha256, payload.number, payload.page_count, "ok")


# ------------------------------------------------------------------------------------- ingests
def pages(document, indexes, count):
    return [PageTask(document.path, document.sha256, index, count) for index in indexes]


def test_an_ingest_that_finds_no_pages_fails_its_document_naming_the_plugin() -> None:
    sched, pool, _ = scheduler(keys=KEYS)
    task = ingest()
    events = deliver(sched, answer(pool.worker(0, task), task, "pages", [], called=0b11))
    failed = [e for e in events if isinstance(e, DocumentFailed)]
    assert len(failed) == 1 and not [e for e in events if isinstance(e, DocumentOpened)]
    assert failed[0].error.type == "EmptyDocumentError"
    assert failed[0].error.message == "ingest found no pages (plugin ingestplug)"


def test_an_ingest_with_repeated_or_missing_pages_fails_its_document_naming_the_plugin() -> None:
    sched, pool, _ = scheduler(keys=KEYS)
    task = ingest()
    doc = task.payload
    events = deliver(sched, answer(pool.worker(0, task), task, "pages", pages(doc, [0, 0, 0], 2), called=0b10))
    failed = [e for e in events if isinstance(e, DocumentFailed)]
    assert len(failed) == 1 and len(sched.queue) == 0
    message = failed[0].error.message
    assert message.startswith("plugin plugins.noop: pagemill_ingest returned 3 page tasks")
    assert "index repeated: 0 (3 times)" in message and "index missing: 1" in message


def test_a_whole_ingest_is_queued() -> None:
    sched, pool, _ = scheduler(keys=KEYS)
    task = ingest()
    events = deliver(sched, answer(pool.worker(0, task), task, "pages", pages(task.payload, [1, 0], 2), called=1))
    assert [e.pages_queued for e in events if isinstance(e, DocumentOpened)] == [2] and len(sched.queue) == 2


# ------------------------------------------------------------------------------------- start-up
def test_workers_that_never_start_are_killed_and_three_stop_the_run_naming_the_cause() -> None:
    sched, pool, _ = scheduler(page_timeout=300)
    for slot in range(3):
        worker = pool.worker(slot, ready=False)
        pool.late = [worker]
        list(sched._check_deadlines())
        assert pool.killed[-1][0] == slot and worker.fault.startswith("did not start within 60 s")
        deliver(sched, died(worker))
    assert sched.critical is not None and sched.critical.error_class == "critical"
    assert sched.critical.message == "workers do not start within 60 s: a plugin may hang at import"


def test_the_start_deadline_is_60_s_or_the_page_timeout_when_lower() -> None:
    assert start_timeout(300) == 60 and start_timeout(20) == 20 and start_timeout(0.5) == 5


# ------------------------------------------------------------------------------------ cancelling
def test_grace_0_stops_without_waiting_for_pages_in_flight() -> None:
    sched, _, clock = scheduler(grace=0)
    sched.cancel()
    assert sched._stop_due(clock())
    patient, _, clock = scheduler(grace=30)
    patient.cancel()
    assert not patient._stop_due(clock())


# --------------------------------------------------------------------------------------- scaling
def test_growth_held_back_by_other_programs_is_said_once_and_every_decision_logged_in_debug() -> None:
    probe = FakeProbe([(100.0, 8000.0)], others=80.0, cpu_count=2)
    sched, pool, clock = scheduler(probe=probe, workers="1:2")
    pool.worker(0, page(index=0))
    for index in range(1, 6):
        sched.queue.push(page(index=index))
    info, sink = lines_at("INFO")
    debug, debug_sink = lines_at("DEBUG")
    try:
        for _ in range(3):
            clock.now += 1
            sched._scale(clock())
    finally:
        logger.remove(sink)
        logger.remove(debug_sink)
    said = [line for line in info if line.startswith("no worker added")]
    assert len(said) == 1 and "other processes use 80 % of 2 cores" in said[0]
    decisions = [line for line in debug if line.startswith("scaling:")]
    assert len(decisions) == 3 and "5 ready pages" in decisions[0] and "80 % other programs" in decisions[0]


def test_grace_may_be_0_but_not_negative() -> None:
    EngineConfig(grace=0).validate()
    with pytest.raises(ConfigError, match="grace must be 0 or more"):
        EngineConfig(grace=-1).validate()


def test_the_first_scaling_check_waits_for_a_real_cpu_reading() -> None:
    probe = ResourceProbe(min_interval=60.0)  # primed now: no reading for a minute
    sched, pool, clock = scheduler(probe=probe, workers="1:2")
    pool.worker(0, page(index=0))
    for index in range(1, 6):
        sched.queue.push(page(index=index))
    sched._scale(clock())
    assert pool.target == 0  # nothing decided on the primed counter's 0 %
    assert sched._next_scale > clock() + 50  # checked again once the reading is due
    probe.min_interval = 0.0
    sched._scale(clock())
    assert pool.target == 2
