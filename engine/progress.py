"""Shared-memory progress counters, their reader, and the progress display.

One ``multiprocessing.Array('q', n_slots * SLOT_WORDS, lock=False)``, created by the parent and
handed to every worker at start. Each worker owns one slot (written only by it, so increments
are exact without locks); the parent reads all slots with no locks and no messages.

Slot layout (int64 words; a slot is SLOT_WORDS = 24 words = 192 bytes, a multiple of 64, so no
two workers share a cache line):

| word | meaning |
| --- | --- |
| 0 | pages started |
| 1 | pages done (the pipeline returned) |
| 2 | pages errored (a stage raised) |
| 3 | task sequence number in hand, -1 when none |
| 4 | ``time.monotonic_ns()`` when the task in hand started |
| 5 | index of the stage in hand (engine.records.STAGES), -1 when none |
| 6 + 3·i | calls of stage i |
| 7 + 3·i | failed calls of stage i |
| 8 + 3·i | busy nanoseconds of stage i |
| 21..23 | padding |
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from engine.records import STAGES

SLOT_WORDS = 24
STARTED, DONE, ERRORED, IN_HAND, IN_HAND_NS, STAGE_NOW = range(6)
STAGE_BASE = 6


def _stage_word(stage: str, field: int) -> int:
    return STAGE_BASE + 3 * STAGES.index(stage) + field


@dataclass(frozen=True)
class ProgressSnapshot:
    pages_started: int
    pages_done: int
    pages_errored: int
    in_hand: int
    stage_calls: dict[str, int]
    stage_failures: dict[str, int]
    stage_busy_seconds: dict[str, float]
    at: float


class ProgressBoard:
    """The parent's side: creates the shared array and reads it."""

    def __init__(self, n_slots: int, ctx: Any) -> None:
        self.n_slots = n_slots
        self.array = ctx.Array("q", n_slots * SLOT_WORDS, lock=False)
        for slot in range(n_slots):
            self.array[slot * SLOT_WORDS + IN_HAND] = -1
            self.array[slot * SLOT_WORDS + STAGE_NOW] = -1

    def in_hand(self, slot: int) -> tuple[int, int]:
        base = slot * SLOT_WORDS
        seq = self.array[base + IN_HAND]
        return (seq, self.array[base + IN_HAND_NS]) if seq >= 0 else (-1, 0)

    def clear_in_hand(self, slot: int) -> None:
        """Only when the slot's owner is dead (or not started): the parent is then its only writer."""
        base = slot * SLOT_WORDS
        self.array[base + IN_HAND] = -1
        self.array[base + STAGE_NOW] = -1

    def snapshot(self) -> ProgressSnapshot:
        values = self.array[:]  # one copy; each word is written whole by its owner
        calls = {s: 0 for s in STAGES}
        failures = {s: 0 for s in STAGES}
        busy = {s: 0 for s in STAGES}
        started = done = errored = in_hand = 0
        for slot in range(self.n_slots):
            base = slot * SLOT_WORDS
            started += values[base + STARTED]
            done += values[base + DONE]
            errored += values[base + ERRORED]
            in_hand += values[base + IN_HAND] >= 0
            for index, stage in enumerate(STAGES):
                word = base + STAGE_BASE + 3 * index
                calls[stage] += values[word]
                failures[stage] += values[word + 1]
                busy[stage] += values[word + 2]
        return ProgressSnapshot(started, done, errored, in_hand, calls, failures,
                                {s: ns / 1e9 for s, ns in busy.items()}, time.monotonic())


class SlotWriter:
    """A worker's side: the only writer of its slot."""

    def __init__(self, array: Any, slot: int) -> None:
        self.array = array
        self.base = slot * SLOT_WORDS

    def page_started(self, task_seq: int, counts_as_page: bool = True) -> None:
        array, base = self.array, self.base
        if counts_as_page:
            array[base + STARTED] += 1
        array[base + IN_HAND_NS] = time.monotonic_ns()
        array[base + IN_HAND] = task_seq

    def stage_started(self, stage: str) -> None:
        self.array[self.base + STAGE_NOW] = STAGES.index(stage)

    def stage_finished(self, stage: str, busy_ns: int, failed: bool) -> None:
        array, word = self.array, self.base + _stage_word(stage, 0)
        array[word] += 1
        if failed:
            array[word + 1] += 1
        array[word + 2] += busy_ns
        array[self.base + STAGE_NOW] = -1

    def page_finished(self, errored: bool, counts_as_page: bool = True) -> None:
        array, base = self.array, self.base
        if counts_as_page:
            array[base + (ERRORED if errored else DONE)] += 1
        array[base + IN_HAND] = -1
        array[base + STAGE_NOW] = -1


class ProgressDisplay:
    """The parent's display: a rich live bar on a terminal, else a log line every few seconds."""

    def __init__(self, total_pages: int | None = None, enabled: bool = True, console: Any = None,
                 log_every: float = 5.0) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.total = total_pages or 0
        self.log_every = log_every
        self.live = enabled and self.console.is_terminal
        self._progress: Any = None
        self._bar: Any = None
        self._last_update = 0.0
        self._last_log = time.monotonic()
        self._window: list[tuple[float, int]] = []
        self.last_line = ""

    def start(self) -> None:
        if not self.live:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]pages"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"), console=self.console, transient=False,
        )
        self._bar = self._progress.add_task("pages", total=self.total or None, detail="")
        self._progress.start()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def set_total(self, total_pages: int) -> None:
        self.total = total_pages

    def update(self, snapshot: ProgressSnapshot, done_pages: int, workers_busy: int, workers_target: int,
               memory_mb: float) -> None:
        now = time.monotonic()
        if now - self._last_update < 0.1:
            return
        self._last_update = now
        self._window.append((now, done_pages))
        self._window = [(t, d) for t, d in self._window if now - t <= 10.0]
        rate = 0.0
        if len(self._window) > 1 and self._window[-1][0] > self._window[0][0]:
            rate = (self._window[-1][1] - self._window[0][1]) / (self._window[-1][0] - self._window[0][0])
        stages = " ".join(f"{s} {snapshot.stage_busy_seconds[s] / max(1, snapshot.stage_calls[s]):.2f}s"
                          for s in ("load", "ocr", "extract") if snapshot.stage_calls.get(s))
        eta = f"ETA {(self.total - done_pages) / rate:.0f} s" if rate > 0 and self.total > done_pages else ""
        detail = f"{rate:.1f} pages/s  workers {workers_busy}/{workers_target}  {memory_mb:.0f} MB  {stages}"
        self.last_line = f"{done_pages}/{self.total or '?'} pages  {detail}  {eta}".strip()
        if self._progress is not None:
            self._progress.update(self._bar, completed=done_pages, total=self.total or None, detail=detail)
        elif self.enabled and now - self._last_log >= self.log_every:
            from loguru import logger

            self._last_log = now
            logger.info("progress: {}", self.last_line)

    def render_summary(self, summary: Any) -> Any:
        from rich.table import Table

        table = Table(title=f"pagemill run {summary.run_id}: {summary.status}")
        table.add_column("")
        table.add_column("", justify="right")
        rows = [
            ("documents", summary.documents), ("pages ok", summary.pages_ok), ("pages to review", summary.pages_review),
            ("pages failed", summary.pages_failed), ("pages done before", summary.pages_skipped),
            ("wall seconds", f"{summary.wall_seconds:.1f}"), ("pages/s", f"{summary.pages_per_second:.2f}"),
            ("peak workers", summary.peak_workers),
        ]
        rows += [(f"{stage} s", f"{seconds:.1f}") for stage, seconds in summary.stage_seconds.items()]
        rows += [(f"errors: {name}", count) for name, count in summary.errors_by_type.items()]
        for name, value in rows:
            table.add_row(name, str(value))
        return table

    def print_summary(self, summary: Any) -> None:
        if self.enabled:
            self.console.print(self.render_summary(summary))
