"""Shared-memory progress counters across real processes, and the progress display."""

from __future__ import annotations

import ctypes
import io
import multiprocessing
import time

import pytest
from conftest import noop_config
from loguru import logger
from rich.console import Console

from engine.api import Engine
from engine.progress import (
    SLOT_WORDS,
    ProgressBoard,
    ProgressDisplay,
    ProgressSnapshot,
    SlotWriter,
    first_slot_word,
    format_duration,
)
from engine.records import STAGES, RunSummary

ROUNDS = 100_000


def hammer(array, slot: int, rounds: int) -> None:
    """A worker's life in fast-forward: every page runs OCR; every 10th page fails."""
    writer = SlotWriter(array, slot)
    for number in range(rounds):
        failed = number % 10 == 0
        writer.page_started(slot * 10 * rounds + number)
        writer.stage_started("ocr")
        writer.stage_finished("ocr", 7, failed)
        writer.page_finished(errored=failed)


def hold_a_page(array, slot: int, seq: int, release) -> None:
    writer = SlotWriter(array, slot)
    writer.page_started(seq)
    writer.stage_started("ocr")
    release.wait(30)
    writer.stage_finished("ocr", 1_000, False)
    writer.page_finished(errored=False)


@pytest.mark.parametrize("n_slots", [1, 2, 3, 5, 8, 17])
def test_slots_are_cache_line_aligned_in_memory(n_slots: int) -> None:
    board = ProgressBoard(n_slots, multiprocessing.get_context("spawn"))
    base_address = ctypes.addressof(board.array)
    assert SLOT_WORDS % 8 == 0 and SLOT_WORDS >= 6 + 3 * len(STAGES)
    for slot in range(n_slots):
        offset = board.slot_offset(slot)
        assert (offset * 8) % 64 == (-base_address) % 64  # aligned relative to the array's start...
        assert (base_address + offset * 8) % 64 == 0  # ...so that it is aligned in memory
        assert offset + SLOT_WORDS <= len(board.array)
        assert SlotWriter(board.array, slot).base == offset  # the writer finds the same slot
    assert first_slot_word(board.array) == board.first_word
    assert board.in_hand(0) == (-1, 0)
    with pytest.raises(IndexError):
        SlotWriter(board.array, n_slots)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_two_workers_increment_exactly_and_snapshots_never_raise(method: str) -> None:
    ctx = multiprocessing.get_context(method)
    board = ProgressBoard(2, ctx)
    workers = [ctx.Process(target=hammer, args=(board.array, slot, ROUNDS)) for slot in range(2)]
    for worker in workers:
        worker.start()
    previous = board.snapshot()
    snapshots = 0
    while any(worker.is_alive() for worker in workers):
        snapshot = board.snapshot()
        snapshots += 1
        # counters only grow, and what finished was started (each word is read whole)
        assert snapshot.pages_started >= previous.pages_started
        assert snapshot.pages_done + snapshot.pages_errored <= snapshot.pages_started
        assert 0 <= snapshot.in_hand <= 2
        for slot in range(2):
            seq, started_ns = board.in_hand(slot)
            assert (seq == -1 and started_ns == 0) or (seq // (10 * ROUNDS) == slot and started_ns > 0)
        previous = snapshot
        time.sleep(0.002)
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    final = board.snapshot()
    failed = 2 * len(range(0, ROUNDS, 10))
    assert final.pages_started == 2 * ROUNDS
    assert final.pages_errored == failed
    assert final.pages_done == 2 * ROUNDS - failed
    assert final.stage_calls == {stage: 2 * ROUNDS if stage == "ocr" else 0 for stage in STAGES}
    assert final.stage_failures["ocr"] == failed
    assert final.stage_busy_seconds["ocr"] == pytest.approx(2 * ROUNDS * 7 / 1e9)
    assert final.in_hand == 0 and sum(final.stage_in_hand.values()) == 0
    assert snapshots > 0


def test_in_hand_shows_the_page_in_progress_with_a_comparable_clock() -> None:
    ctx = multiprocessing.get_context("forkserver")
    board = ProgressBoard(3, ctx)
    release = ctx.Event()
    before_ns = time.monotonic_ns()
    worker = ctx.Process(target=hold_a_page, args=(board.array, 1, 42, release))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while board.in_hand(1)[0] == -1 and time.monotonic() < deadline:
            time.sleep(0.005)
        seq, started_ns = board.in_hand(1)
        assert seq == 42
        assert before_ns <= started_ns <= time.monotonic_ns()  # the worker's clock is the parent's
        snapshot = board.snapshot()
        assert snapshot.in_hand == 1 and snapshot.stage_in_hand["ocr"] == 1
        assert snapshot.pages_started == 1 and snapshot.pages_done == 0
        assert board.in_hand(0) == (-1, 0) and board.in_hand(2) == (-1, 0)
    finally:
        release.set()
        worker.join(30)
    assert board.in_hand(1) == (-1, 0)
    assert board.snapshot().pages_done == 1


def test_clear_in_hand_forgets_a_dead_workers_page() -> None:
    ctx = multiprocessing.get_context("forkserver")
    board = ProgressBoard(2, ctx)
    release = ctx.Event()
    worker = ctx.Process(target=hold_a_page, args=(board.array, 0, 7, release))
    worker.start()
    deadline = time.monotonic() + 30
    while board.in_hand(0)[0] == -1 and time.monotonic() < deadline:
        time.sleep(0.005)
    worker.kill()
    worker.join(30)
    assert board.in_hand(0)[0] == 7  # the page it died with stays visible...
    board.clear_in_hand(0)
    snapshot = board.snapshot()
    assert board.in_hand(0) == (-1, 0) and snapshot.in_hand == 0  # ...until the parent clears it
    assert snapshot.stage_in_hand["ocr"] == 0 and snapshot.pages_started == 1


def test_a_task_that_is_not_a_page_is_in_hand_but_not_counted() -> None:
    board = ProgressBoard(1, multiprocessing.get_context("spawn"))
    writer = SlotWriter(board.array, 0)
    writer.page_started(5, counts_as_page=False)
    assert board.in_hand(0)[0] == 5 and board.snapshot().pages_started == 0
    writer.page_finished(errored=True, counts_as_page=False)
    snapshot = board.snapshot()
    assert board.in_hand(0) == (-1, 0) and snapshot.pages_errored == 0 and snapshot.pages_done == 0


def test_a_stage_without_counters_is_ignored() -> None:
    board = ProgressBoard(1, multiprocessing.get_context("spawn"))
    writer = SlotWriter(board.array, 0)
    writer.stage_started("ocr")
    writer.stage_started("translate")
    writer.stage_finished("translate", 5, failed=True)
    snapshot = board.snapshot()
    assert sum(snapshot.stage_calls.values()) == sum(snapshot.stage_failures.values()) == 0
    assert sum(snapshot.stage_in_hand.values()) == 0


# ----------------------------------------------------------------------------- the display
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot_of(done: int, calls: dict[str, int], busy: dict[str, float], running: dict[str, int] | None = None,
                failures: dict[str, int] | None = None) -> ProgressSnapshot:
    zeros = dict.fromkeys(STAGES, 0)
    return ProgressSnapshot(done, done, 0, sum((running or {}).values()), {**zeros, **calls},
                            {**zeros, **(failures or {})}, {**dict.fromkeys(STAGES, 0.0), **busy}, 0.0,
                            {**zeros, **(running or {})})


@pytest.fixture
def log_lines():
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    yield lines
    logger.remove(sink)


def test_without_a_terminal_progress_goes_to_the_log(log_lines: list[str]) -> None:
    clock = Clock()
    display = ProgressDisplay(total_pages=100, console=Console(file=io.StringIO(), force_terminal=False),
                              log_every=5.0, clock=clock)
    display.start()
    for second in range(21):  # 20 s at 4 pages/s; the OCR stage takes 3/4 of the busy time
        clock.now = 1000.0 + second
        done = 4 * second
        display.update(snapshot_of(done, {"load": done, "ocr": done}, {"load": 0.05 * done, "ocr": 0.15 * done},
                                   running={"ocr": 2}),
                       done_pages=done, workers_busy=2, workers_target=3, memory_mb=350.0)
    display.stop()
    assert len(log_lines) == 4  # one line every 5 s, none at once
    last = log_lines[-1]
    assert last.startswith("progress: 80/100 pages (80 %), 4.0 pages/s, ETA 5 s, workers 2/3, 350 MB")
    assert "ocr 4.0/s 75 %" in last and "load 4.0/s 25 %" in last
    assert "extract" not in last  # a stage that never ran is not shown


def test_updates_are_rate_limited_and_stop_shows_the_last(log_lines: list[str]) -> None:
    clock = Clock()
    display = ProgressDisplay(total_pages=10, console=Console(file=io.StringIO(), force_terminal=False),
                              log_every=0.0, clock=clock)
    for step in range(10):  # 10 updates in 45 ms
        clock.now = 1000.0 + step * 0.005
        display.update(snapshot_of(step, {}, {}), done_pages=step, workers_busy=1, workers_target=1, memory_mb=1.0)
    assert len(log_lines) == 1 and log_lines[0].startswith("progress: 0/10 pages")
    display.stop()
    assert display.last_line.startswith("9/10 pages")  # the last values are rendered at stop


def test_a_disabled_display_says_nothing(log_lines: list[str]) -> None:
    out = io.StringIO()
    display = ProgressDisplay(total_pages=5, enabled=False, console=Console(file=out, force_terminal=True),
                              log_every=0.0)
    display.start()
    display.update(snapshot_of(2, {}, {}), done_pages=2, workers_busy=1, workers_target=1, memory_mb=1.0)
    display.stop()
    assert log_lines == [] and out.getvalue() == ""


def test_on_a_terminal_it_renders_a_live_view() -> None:
    out = io.StringIO()
    clock = Clock()
    display = ProgressDisplay(total_pages=10, console=Console(file=out, force_terminal=True, width=120),
                              clock=clock)
    display.start()
    display.update(snapshot_of(1, {"ocr": 1}, {"ocr": 0.5}), done_pages=1, workers_busy=2, workers_target=2,
                   memory_mb=120.0)
    clock.now += 2.0
    display.update(snapshot_of(3, {"ocr": 3}, {"ocr": 1.5}, running={"ocr": 1}, failures={"ocr": 1}),
                   done_pages=3, workers_busy=1, workers_target=2, memory_mb=120.0)
    display.stop()
    text = out.getvalue()
    assert "3/10 pages (30 %), 1.0 pages/s, ETA 7 s" in text
    assert "workers 1/2 busy" in text and "ocr" in text and "calls/s" in text


def test_the_summary_table() -> None:
    summary = RunSummary(
        run_id=7, out_dir="/tmp/out", status="partial", pages_total=12, pages_ok=9, pages_review=2,
        pages_failed=1, pages_skipped=3, documents=4, wall_seconds=75.0, pages_per_second=0.16,
        stage_seconds={"load": 1.0, "ocr": 6.0}, stage_busy_seconds={"load": 1.5, "ocr": 4.5},
        errors_by_class={"permanent": 1}, errors_by_type={"CorruptDocumentError": 1}, peak_workers=2,
    )
    out = io.StringIO()
    Console(file=out, width=100).print(ProgressDisplay(enabled=False).render_summary(summary))
    text = out.getvalue()
    assert "pagemill run 7: partial" in text
    for words in ("to review", "done in an earlier run", "1 min 15 s", "0.16", "CorruptDocumentError",
                  "stage ocr", "4.5 s (75 %)"):
        assert words in text, words


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (59, "59 s"), (200, "3 min 20 s"), (7500, "2 h 05 min")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_an_attempt_lost_with_its_worker_is_counted_errored_and_killed_once() -> None:
    board = ProgressBoard(2, multiprocessing.get_context("spawn"))
    writer = SlotWriter(board.array, 1)
    writer.page_started(1)
    writer.page_finished(errored=False)
    writer.page_started(2)
    writer.stage_started("ocr")
    writer.plugin_started(3)  # the worker dies here
    assert board.plugin_now(1) == 3
    assert board.reconcile_dead(1) == 1
    snapshot = board.snapshot()
    assert (snapshot.pages_started, snapshot.pages_done, snapshot.pages_errored, snapshot.pages_killed) == (2, 1, 1, 1)
    assert board.in_hand(1) == (-1, 0) and board.plugin_now(1) == -1 and snapshot.stage_in_hand["ocr"] == 0
    assert board.reconcile_dead(1) == 0  # settled once: a later life of the slot starts balanced
    assert board.snapshot().pages_errored == 1


def test_counts_since_a_baseline() -> None:
    board = ProgressBoard(1, multiprocessing.get_context("spawn"))
    writer = SlotWriter(board.array, 0)
    for seq in range(3):
        writer.page_started(seq)
        writer.stage_finished("load", 1_000_000, False)
        writer.page_finished(errored=seq == 2)
    baseline = board.snapshot()
    writer.page_started(9)
    writer.stage_finished("load", 2_000_000, True)
    since = board.snapshot().minus(baseline)
    assert (since.pages_started, since.pages_done, since.pages_errored) == (1, 0, 0)
    assert since.in_hand == 1  # what is in hand now, not a difference
    assert since.stage_calls["load"] == 1 and since.stage_failures["load"] == 1
    assert since.stage_busy_seconds["load"] == pytest.approx(0.002)


def test_a_document_that_cannot_be_opened_counts_once_in_the_known_pages_and_the_done(noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 2])
    (archive / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really")
    updates = []
    config = noop_config(tmp_path / "out", load_entry_points=True)
    summary = Engine(config, on_progress=updates.append).run(str(archive))
    assert summary.pages_failed == 1 and summary.pages_ok + summary.pages_review == 5
    last = updates[-1]
    assert last.pages_done == last.pages_known == 6
    assert all(update.pages_done <= max(update.pages_known, 1) for update in updates)
