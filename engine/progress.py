"""Shared-memory progress counters: the parent's board and each worker's slot writer.

One ``ctx.Array('q', ..., lock=False)`` (shared memory from ``multiprocessing.sharedctypes``) is
created by the parent and handed to every worker process at start (as a ``Process`` argument).
Each worker owns one slot and is its only writer, so plain ``+=`` on int64 words stays exact
without locks (two writers on one word lose increments); the parent reads every slot with no
locks and no messages. An aligned int64 is written and read whole on the platforms we run on,
so a reader never sees half a number, only a slightly old one.

Slots are cache-line aligned so that two workers never write the same 64-byte line: the array's
heap block is only 8-byte aligned, so the board allocates 7 spare words and slot 0 starts at the
first word whose *address* is a multiple of 64 (``first_slot_word``; the same in every process,
because the shared arena is mapped page-aligned everywhere). ``SLOT_WORDS`` is a multiple of 8.

Layout of a slot, in int64 words (``S = len(engine.records.STAGES)`` = 5, ``SLOT_WORDS`` = 24):

| word | name | meaning |
| --- | --- | --- |
| 0 | ``STARTED`` | pages started |
| 1 | ``DONE`` | pages done (the pipeline returned a result) |
| 2 | ``ERRORED`` | pages errored (a stage raised) |
| 3 | ``IN_HAND`` | task sequence number of the task in hand, -1 when none |
| 4 | ``IN_HAND_NS`` | ``time.monotonic_ns()`` when the task in hand started (CLOCK_MONOTONIC is system-wide on Linux, so the parent can compare it with its own clock) |
| 5 | ``STAGE_NOW`` | index in ``STAGES`` of the stage running now, -1 when none |
| 6 + 3·i | | calls of stage i |
| 7 + 3·i | | failed calls of stage i |
| 8 + 3·i | | busy nanoseconds of stage i |
| 6 + 3·S … SLOT_WORDS - 1 | | padding to a multiple of 8 words (64 bytes) |

Write order keeps ``in_hand`` consistent: ``page_started`` writes the start time before the
sequence number and ``page_finished`` resets the sequence number to -1, so a reader that sees the
same start time before and after reading the sequence number holds a matching pair.

``ProgressDisplay`` (parent only) shows the sums: a rich live view on a terminal, else a log line
every few seconds. rich is imported only when a display is made, so workers never load it.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger

from engine.records import STAGES, RunSummary

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

CACHE_LINE_BYTES = 64
WORD_BYTES = 8
WORDS_PER_LINE = CACHE_LINE_BYTES // WORD_BYTES

STARTED, DONE, ERRORED, IN_HAND, IN_HAND_NS, STAGE_NOW = range(6)
STAGE_BASE = 6
STAGE_CALLS, STAGE_FAILED, STAGE_BUSY_NS = range(3)
STAGE_WORDS = 3
_USED_WORDS = STAGE_BASE + STAGE_WORDS * len(STAGES)
SLOT_WORDS: int = -(-_USED_WORDS // WORDS_PER_LINE) * WORDS_PER_LINE
_STAGE_INDEX = {stage: index for index, stage in enumerate(STAGES)}


def _words(array: Any) -> memoryview:
    """The array's int64 words as a memoryview: the same memory, cheaper item access."""
    return memoryview(array).cast("B").cast("q")


def first_slot_word(array: Any) -> int:
    """The index of the array's first word whose address is 64-byte aligned: where slot 0 starts."""
    misalignment = ctypes.addressof(array) % CACHE_LINE_BYTES
    return ((CACHE_LINE_BYTES - misalignment) % CACHE_LINE_BYTES) // WORD_BYTES


@dataclass(frozen=True)
class ProgressSnapshot:
    """The sums over all slots at one moment (``at`` is ``time.monotonic()``)."""

    pages_started: int
    pages_done: int
    pages_errored: int
    in_hand: int  # slots with a task in hand
    stage_calls: dict[str, int]
    stage_failures: dict[str, int]
    stage_busy_seconds: dict[str, float]
    at: float
    stage_in_hand: dict[str, int] = field(default_factory=dict)  # slots running each stage now


class ProgressBoard:
    """The parent's side: creates the shared array, reads it, and resets a dead worker's slot."""

    def __init__(self, n_slots: int, ctx: Any) -> None:
        if n_slots < 1:
            raise ValueError(f"a progress board needs at least one slot, not {n_slots}")
        self.n_slots = n_slots
        self.array = ctx.Array("q", n_slots * SLOT_WORDS + WORDS_PER_LINE - 1, lock=False)  # room to align
        self.first_word = first_slot_word(self.array)
        self.words = _words(self.array)
        for slot in range(n_slots):
            base = self.slot_offset(slot)
            self.array[base + IN_HAND] = -1
            self.array[base + STAGE_NOW] = -1

    def slot_offset(self, slot: int) -> int:
        """The index in ``array`` of the slot's first word."""
        if not 0 <= slot < self.n_slots:
            raise IndexError(f"slot {slot} out of range 0..{self.n_slots - 1}")
        return self.first_word + slot * SLOT_WORDS

    def in_hand(self, slot: int) -> tuple[int, int]:
        """(task_seq, started_ns) of the task the slot's worker has in hand, (-1, 0) if none."""
        array, base = self.words, self.slot_offset(slot)
        for _ in range(8):
            started_ns = array[base + IN_HAND_NS]
            seq = array[base + IN_HAND]
            if seq < 0:
                return (-1, 0)
            if array[base + IN_HAND_NS] == started_ns:
                return (seq, started_ns)
        return (seq, array[base + IN_HAND_NS])  # a worker starting tasks faster than we read

    def clear_in_hand(self, slot: int) -> None:
        """Forget the slot's task in hand; only when its owner is dead (or not yet started), so
        that the parent is then the slot's only writer."""
        base = self.slot_offset(slot)
        self.array[base + IN_HAND] = -1
        self.array[base + STAGE_NOW] = -1

    def snapshot(self) -> ProgressSnapshot:
        """Sum every slot: one copy of the slots, summed word by word across slots; no locks."""
        start = self.first_word
        values = self.words[start:start + self.n_slots * SLOT_WORDS].tolist()

        def total(word: int) -> int:
            return sum(values[word::SLOT_WORDS])

        def per_stage(which: int) -> dict[str, int]:
            return {stage: total(STAGE_BASE + STAGE_WORDS * index + which) for index, stage in enumerate(STAGES)}

        stages_now = values[STAGE_NOW::SLOT_WORDS]
        return ProgressSnapshot(
            pages_started=total(STARTED),
            pages_done=total(DONE),
            pages_errored=total(ERRORED),
            in_hand=sum(seq >= 0 for seq in values[IN_HAND::SLOT_WORDS]),
            stage_calls=per_stage(STAGE_CALLS),
            stage_failures=per_stage(STAGE_FAILED),
            stage_busy_seconds={stage: ns / 1e9 for stage, ns in per_stage(STAGE_BUSY_NS).items()},
            at=time.monotonic(),
            stage_in_hand={stage: stages_now.count(index) for index, stage in enumerate(STAGES)},
        )


class SlotWriter:
    """A worker's side: the only writer of its slot. Stage names outside ``STAGES`` are not counted.

    ``counts_as_page=False`` tracks a task that is not a page (a document's ingest): it is in
    hand (so timeouts see it) but adds to no page counter.
    """

    def __init__(self, array: Any, slot: int) -> None:
        self.array = array
        self.words = _words(array)
        self.slot = slot
        self.base = first_slot_word(array) + slot * SLOT_WORDS
        if self.base + SLOT_WORDS > len(array):
            raise IndexError(f"slot {slot} does not fit in a progress array of {len(array)} words")

    def page_started(self, task_seq: int, counts_as_page: bool = True) -> None:
        array, base = self.words, self.base
        if counts_as_page:
            array[base + STARTED] += 1
        array[base + IN_HAND_NS] = time.monotonic_ns()  # before the sequence number: see the docstring
        array[base + IN_HAND] = task_seq

    def stage_started(self, stage: str) -> None:
        self.words[self.base + STAGE_NOW] = _STAGE_INDEX.get(stage, -1)

    def stage_finished(self, stage: str, busy_ns: int, failed: bool) -> None:
        index = _STAGE_INDEX.get(stage)
        if index is None:  # a stage without counters: never let counting break a page
            return
        array, word = self.words, self.base + STAGE_BASE + STAGE_WORDS * index
        array[word + STAGE_CALLS] += 1
        if failed:
            array[word + STAGE_FAILED] += 1
        array[word + STAGE_BUSY_NS] += int(busy_ns)
        array[self.base + STAGE_NOW] = -1

    def page_finished(self, errored: bool, counts_as_page: bool = True) -> None:
        array, base = self.words, self.base
        if counts_as_page:
            array[base + (ERRORED if errored else DONE)] += 1
        array[base + IN_HAND] = -1
        array[base + STAGE_NOW] = -1


# --------------------------------------------------------------------------- the display
@dataclass(frozen=True)
class _Reading:
    at: float
    done_pages: int
    stage_calls: dict[str, int]
    stage_busy_seconds: dict[str, float]


@dataclass(frozen=True)
class _StageRate:
    stage: str
    calls_per_second: float | None  # None until the window spans some time
    busy_share: float  # of all stages' busy time in the window, 0..1
    running: int
    failed: int


def format_duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '2 h 05 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressDisplay:
    """The parent's view of a run: a rich live view on a terminal, else a loguru line every
    ``log_every`` seconds. ``update`` may be called as often as wanted: it renders at most
    about ten times a second (``min_interval``); rates are over the last ``window`` seconds."""

    min_interval = 0.1
    window = 10.0

    def __init__(self, total_pages: int | None = None, enabled: bool = True,
                 console: Console | None = None, log_every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console
        self.enabled = enabled
        self.total = total_pages or 0
        self.log_every = log_every
        self.live_view = enabled and console.is_terminal
        self.last_line = ""  # the latest progress line, as logged
        self._live: Any = None
        self._readings: deque[_Reading] = deque()
        self._pending: tuple[ProgressSnapshot, int, int, int, float] | None = None
        self._last_render = -math.inf
        self._clock = clock
        self._last_log = clock()

    def start(self) -> None:
        if not self.live_view or self._live is not None:
            return
        from rich.live import Live

        self._live = Live(console=self.console, auto_refresh=False, transient=False,
                          redirect_stdout=False, redirect_stderr=True)
        self._live.start()

    def stop(self) -> None:
        if self._pending is not None:
            self._render(self._clock())  # the last values, even if rate-limited
        if self._live is not None:
            self._live.stop()
            self._live = None

    def set_total(self, total_pages: int) -> None:
        self.total = total_pages

    def update(self, snapshot: ProgressSnapshot, done_pages: int, workers_busy: int,
               workers_target: int, memory_mb: float) -> None:
        if not self.enabled:
            return
        self._pending = (snapshot, done_pages, workers_busy, workers_target, memory_mb)
        now = self._clock()
        if now - self._last_render >= self.min_interval:
            self._render(now)

    # ------------------------------------------------------------------ internals
    def _render(self, now: float) -> None:
        assert self._pending is not None
        snapshot, done, busy, target, memory_mb = self._pending
        self._pending = None
        self._last_render = now
        self._readings.append(_Reading(now, done, dict(snapshot.stage_calls), dict(snapshot.stage_busy_seconds)))
        while len(self._readings) > 2 and now - self._readings[1].at >= self.window:
            self._readings.popleft()
        first, last = self._readings[0], self._readings[-1]
        span = last.at - first.at
        rate = (last.done_pages - first.done_pages) / span if span > 0 else None
        stages = self._stage_rates(snapshot, first, last, span)
        self.last_line = self._line(done, rate, busy, target, memory_mb, stages)
        if self._live is not None:
            self._live.update(self._renderable(done, rate, busy, target, memory_mb, stages), refresh=True)
        elif not self.live_view and now - self._last_log >= self.log_every:
            self._last_log = now
            logger.info("progress: {}", self.last_line)

    def _stage_rates(self, snapshot: ProgressSnapshot, first: _Reading, last: _Reading,
                     span: float) -> list[_StageRate]:
        windowed = span > 0
        busy = {s: last.stage_busy_seconds.get(s, 0.0) - (first.stage_busy_seconds.get(s, 0.0) if windowed else 0.0)
                for s in STAGES}
        total_busy = sum(busy.values())
        rates = []
        for stage in STAGES:
            calls = last.stage_calls.get(stage, 0) - (first.stage_calls.get(stage, 0) if windowed else 0)
            running = snapshot.stage_in_hand.get(stage, 0)
            if not calls and not running and not busy[stage]:
                continue
            rates.append(_StageRate(stage, calls / span if windowed else None,
                                    busy[stage] / total_busy if total_busy > 0 else 0.0,
                                    running, snapshot.stage_failures.get(stage, 0)))
        return rates

    def _pages_text(self, done: int, rate: float | None) -> str:
        text = f"{done}/{self.total or '?'} pages"
        if self.total:
            text += f" ({100 * min(done, self.total) / self.total:.0f} %)"
        text += ", " + (f"{rate:.1f} pages/s" if rate is not None else "– pages/s")
        if rate is not None and rate > 0 and self.total > done:
            text += f", ETA {format_duration((self.total - done) / rate)}"
        return text

    def _line(self, done: int, rate: float | None, busy: int, target: int, memory_mb: float,
              stages: list[_StageRate]) -> str:
        line = f"{self._pages_text(done, rate)}, workers {busy}/{target}, {memory_mb:.0f} MB"
        parts = [f"{s.stage} {s.calls_per_second:.1f}/s {100 * s.busy_share:.0f} %" if s.calls_per_second is not None
                 else f"{s.stage} {100 * s.busy_share:.0f} %" for s in stages]
        return line + ("; stages: " + ", ".join(parts) if parts else "")

    def _renderable(self, done: int, rate: float | None, busy: int, target: int, memory_mb: float,
                    stages: list[_StageRate]) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        head = Table.grid(padding=(0, 1))
        head.add_row(ProgressBar(total=self.total or None, completed=min(done, self.total or done), width=30),
                     Text(self._pages_text(done, rate)))
        workers = Text(f"workers {busy}/{target} busy, workers' memory {memory_mb:.0f} MB", style="dim")
        if not stages:
            return Group(head, workers)
        table = Table(box=None, padding=(0, 2), show_edge=False)
        for name in ("stage", "calls/s", "busy share", "running", "failed"):
            table.add_column(name, justify="left" if name == "stage" else "right")
        for s in stages:
            table.add_row(s.stage, "–" if s.calls_per_second is None else f"{s.calls_per_second:.1f}",
                          f"{100 * s.busy_share:.0f} %", str(s.running), str(s.failed) if s.failed else "")
        return Group(head, workers, table)

    # ------------------------------------------------------------------ the end
    def render_summary(self, summary: RunSummary) -> Table:
        """The end-of-run table: pages by outcome, speed, workers, stages and errors."""
        from rich.table import Table

        table = Table(title=f"pagemill run {summary.run_id}: {summary.status}", show_header=False,
                      title_justify="left")
        table.add_column("what")
        table.add_column("value", justify="right")
        wall = summary.wall_seconds
        stage_seconds = summary.stage_busy_seconds or summary.stage_seconds  # busy time when counted
        all_stages = sum(stage_seconds.values()) or 1.0
        sections: list[list[tuple[str, object]]] = [
            [("documents", summary.documents), ("pages", summary.pages_total), ("  ok", summary.pages_ok),
             ("  to review", summary.pages_review), ("  failed", summary.pages_failed),
             ("  done in an earlier run", summary.pages_skipped),
             ("wall time", format_duration(wall) if wall >= 60 else f"{wall:.1f} s"),
             ("pages/s", f"{summary.pages_per_second:.2f}"), ("peak workers", summary.peak_workers)]
            + ([("circuit breaker events", summary.breaker_events)] if summary.breaker_events else []),
            [(f"stage {stage}", f"{seconds:.1f} s ({100 * seconds / all_stages:.0f} %)")
             for stage in STAGES if (seconds := stage_seconds.get(stage, 0.0))],
            [(f"errors: {name}", count) for name, count in summary.errors_by_class.items()]
            + [(f"  {name}", count) for name, count in summary.errors_by_type.items()],
            [("message", summary.message)] if summary.message else [],
        ]
        for index, rows in enumerate(section for section in sections if section):
            if index:
                table.add_section()
            for name, value in rows:
                table.add_row(name, str(value))
        return table

    def print_summary(self, summary: RunSummary) -> None:
        if self.enabled:
            self.console.print(self.render_summary(summary))


__all__ = ["SLOT_WORDS", "ProgressBoard", "ProgressDisplay", "ProgressSnapshot", "SlotWriter", "first_slot_word"]
