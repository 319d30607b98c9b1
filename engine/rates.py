"""Rates over a sliding window: pages per second, an ETA and per-stage throughput.

One :class:`RateWindow` is fed readings (a time, the pages done, the shared-memory counters) as a
run goes and gives the rates over the last ``window`` seconds. The progress display and the API's
progress snapshot (``Engine.progress()``, ``on_progress``) both use it, so they show the same
figures. Readings are kept only for the window (plus one), so memory stays flat.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.records import STAGES

if TYPE_CHECKING:
    from engine.progress import ProgressSnapshot

WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class StageRate:
    """One stage's throughput over the window."""

    stage: str
    calls_per_second: float | None  # None until the window spans some time
    busy_share: float  # of all stages' busy time in the window, 0..1
    running: int  # workers in this stage now
    failed: int  # failed calls of the stage in the run


@dataclass(frozen=True)
class Rates:
    """What a window of readings gives: pages per second (None until it spans some time) and the
    stages that ran or run, in pipeline order."""

    pages_per_second: float | None
    stages: tuple[StageRate, ...] = ()

    def eta_seconds(self, done: int, total: int) -> float | None:
        """Seconds until ``total`` pages are done at the current rate; None without a rate or a
        total above ``done``."""
        rate = self.pages_per_second
        if rate is None or rate <= 0 or total <= done:
            return None
        return (total - done) / rate


@dataclass(frozen=True)
class _Reading:
    at: float
    done_pages: int
    stage_calls: dict[str, int]
    stage_busy_seconds: dict[str, float]


class RateWindow:
    """Readings of the last ``window`` seconds (the oldest one just outside it is kept as the
    window's start) and the rates between the first and the last."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        if window <= 0:
            raise ValueError(f"a rate window must be positive, not {window}")
        self.window = window
        self._readings: deque[_Reading] = deque()

    def add(self, at: float, done_pages: int, snapshot: ProgressSnapshot) -> Rates:
        """Add a reading at time ``at`` (seconds, any monotonic clock) and return the rates."""
        self._readings.append(_Reading(at, done_pages, dict(snapshot.stage_calls), dict(snapshot.stage_busy_seconds)))
        while len(self._readings) > 2 and at - self._readings[1].at >= self.window:
            self._readings.popleft()
        first, last = self._readings[0], self._readings[-1]
        span = last.at - first.at
        rate = (last.done_pages - first.done_pages) / span if span > 0 else None
        return Rates(rate, _stage_rates(snapshot, first, last, span))


def _stage_rates(snapshot: ProgressSnapshot, first: _Reading, last: _Reading, span: float) -> tuple[StageRate, ...]:
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
        rates.append(StageRate(stage, calls / span if windowed else None,
                               busy[stage] / total_busy if total_busy > 0 else 0.0,
                               running, snapshot.stage_failures.get(stage, 0)))
    return tuple(rates)


__all__ = ["WINDOW_SECONDS", "RateWindow", "Rates", "StageRate"]
