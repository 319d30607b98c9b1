"""Shared-memory progress counters: the parent's board and each worker's slot writer.

One ``ctx.Array('q', ..., lock=False)`` (shared memory from ``multiprocessing.sharedctypes``) is
created by the parent and handed to every worker process at start (as a ``Process`` argument).
Each worker owns one slot and is its only writer, so plain ``+=`` on int64 words stays exact
without locks (two writers on one word lose increments); the parent reads every slot with no
locks and no messages. An aligned int64 is written and read whole on the platforms we run on,
so a reader never sees half a number, only a slightly old one. The parent writes a slot only
once its worker is dead (``reconcile_dead``), so each slot still has one writer at a time.

Slots are cache-line aligned so that two workers never write the same 64-byte line: the array's
heap block is only 8-byte aligned, so the board allocates 7 spare words and slot 0 starts at the
first word whose *address* is a multiple of 64 (``first_slot_word``; the same in every process,
because the shared arena is mapped page-aligned everywhere). ``SLOT_WORDS`` is a multiple of 8.

Layout of a slot, in int64 words (``S = len(engine.records.STAGES)`` = 5, ``SLOT_WORDS`` = 24):

| word | name | meaning |
| --- | --- | --- |
| 0 | ``STARTED`` | page attempts started (every attempt of a page, retries included) |
| 1 | ``DONE`` | page attempts that returned a result |
| 2 | ``ERRORED`` | page attempts that ended in an error: a stage raised (written by the worker), or the worker died or was killed with the attempt in hand (written by the parent after the death, see ``KILLED``) |
| 3 | ``KILLED`` | page attempts lost with their worker (crash, page timeout, end of the grace period); also counted in ``ERRORED`` |
| 4 | ``IN_HAND`` | task sequence number of the task in hand, -1 when none |
| 5 | ``IN_HAND_NS`` | ``time.monotonic_ns()`` when the task in hand started (CLOCK_MONOTONIC is system-wide on Linux, so the parent can compare it with its own clock) |
| 6 | ``STAGE_NOW`` | index in ``STAGES`` of the stage running now, -1 when none |
| 7 | ``PLUGIN_NOW`` | index of the plugin hook running now in the worker's call table (``engine.gates``), -1 when none |
| 8 + 3·i | | calls of stage i |
| 9 + 3·i | | failed calls of stage i |
| 10 + 3·i | | busy nanoseconds of stage i |
| 8 + 3·S … SLOT_WORDS - 1 | | padding to a multiple of 8 words (64 bytes) |

The sums are exact, with a document's ingest counted in no page counter:

- ``STARTED = DONE + ERRORED + pages in hand`` at every moment (in a consistent snapshot);
- a page is finished once: a page that ends ``ok`` or ``review`` has exactly one ``DONE`` attempt
  (its last), so ``DONE`` = pages ok + review of the attempts counted; every other attempt
  errored, and each errored attempt is one attempt row with an error in the ledger (a transient
  failure retried, a page held by a circuit breaker, a killed worker, the final failure); only
  attempts killed when a cancelled run's grace period ends have no ledger row (they are redone on
  resume).

The counters grow for the life of the pool (an ``Engine`` may do several runs): a run reports
``snapshot().minus(baseline)``, with the baseline taken when it starts.

Write order keeps ``in_hand`` consistent: ``page_started`` writes the start time before the
sequence number and ``page_finished`` resets the sequence number to -1, so a reader that sees the
same start time before and after reading the sequence number holds a matching pair.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field, replace
from typing import Any

from engine.records import STAGES

CACHE_LINE_BYTES = 64
WORD_BYTES = 8
WORDS_PER_LINE = CACHE_LINE_BYTES // WORD_BYTES

STARTED, DONE, ERRORED, KILLED, IN_HAND, IN_HAND_NS, STAGE_NOW, PLUGIN_NOW = range(8)
STAGE_BASE = 8
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
    pages_killed: int = 0  # of pages_errored: attempts lost with their worker

    def minus(self, baseline: ProgressSnapshot) -> ProgressSnapshot:
        """What was counted since ``baseline`` (the in-hand figures are the current ones)."""

        def less(now: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
            return {stage: value - then.get(stage, 0) for stage, value in now.items()}

        return replace(
            self,
            pages_started=self.pages_started - baseline.pages_started,
            pages_done=self.pages_done - baseline.pages_done,
            pages_errored=self.pages_errored - baseline.pages_errored,
            pages_killed=self.pages_killed - baseline.pages_killed,
            stage_calls=less(self.stage_calls, baseline.stage_calls),
            stage_failures=less(self.stage_failures, baseline.stage_failures),
            stage_busy_seconds=less(self.stage_busy_seconds, baseline.stage_busy_seconds),
        )


class ProgressBoard:
    """The parent's side: creates the shared array, reads it, and settles a dead worker's slot."""

    def __init__(self, n_slots: int, ctx: Any) -> None:
        if n_slots < 1:
            raise ValueError(f"a progress board needs at least one slot, not {n_slots}")
        self.n_slots = n_slots
        self.array = ctx.Array("q", n_slots * SLOT_WORDS + WORDS_PER_LINE - 1, lock=False)  # room to align
        self.first_word = first_slot_word(self.array)
        self.words = _words(self.array)
        for slot in range(n_slots):
            self.clear_in_hand(slot)

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

    def plugin_now(self, slot: int) -> int:
        """The index of the plugin hook the slot's worker is running (its call table), -1 if none."""
        return self.words[self.slot_offset(slot) + PLUGIN_NOW]

    def clear_in_hand(self, slot: int) -> None:
        """Forget the slot's task in hand; only when its owner is dead (or not yet started), so
        that the parent is then the slot's only writer."""
        base = self.slot_offset(slot)
        self.array[base + IN_HAND] = -1
        self.array[base + STAGE_NOW] = -1
        self.array[base + PLUGIN_NOW] = -1

    def reconcile_dead(self, slot: int) -> int:
        """Settle the slot of a worker that is dead: a page attempt it started and never finished
        is counted as errored and killed, and its task in hand is forgotten. Returns how many."""
        words, base = self.words, self.slot_offset(slot)
        lost = words[base + STARTED] - words[base + DONE] - words[base + ERRORED]
        if lost > 0:
            words[base + ERRORED] += lost
            words[base + KILLED] += lost
        self.clear_in_hand(slot)
        return max(0, lost)

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
            pages_killed=total(KILLED),
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

    def plugin_started(self, index: int) -> None:
        self.words[self.base + PLUGIN_NOW] = index

    def plugin_finished(self) -> None:
        self.words[self.base + PLUGIN_NOW] = -1

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


from engine.progress_display import ProgressDisplay, format_duration  # noqa: E402 - kept importable from here

__all__ = ["SLOT_WORDS", "ProgressBoard", "ProgressDisplay", "ProgressSnapshot", "SlotWriter", "first_slot_word",
           "format_duration"]
