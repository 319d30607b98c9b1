"""The adaptive worker-count policy: a pure function, and the psutil probe that feeds it.

``decide_worker_count`` maps what the parent sees (backlog, busy workers, CPU, memory, worker
RSS) to a target in [min, max]. The pool applies the target (engine.pool); this module starts
and stops nothing. The steps, in order:

1. Memory pressure (available < min_free_memory_mb): one worker fewer at once, whatever the
   backlog, never below min.
2. Wanted workers from the backlog: busy workers plus ceil(backlog seconds / target seconds),
   where backlog seconds = ready pages × seconds per page ÷ ... (with no estimate yet, one worker
   per ready page); never more than busy + ready pages; clamped to [min, max].
3. Growth only with headroom: no new worker when available memory < min_free_memory_mb + 1.5 ×
   a worker's RSS, nor when other processes keep the CPU above max_cpu_percent.
4. Up at once; down (idle) only after down_after_checks consecutive checks agree (hysteresis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import psutil


@dataclass(frozen=True)
class ScalingLimits:
    min_workers: int
    max_workers: int
    min_free_memory_mb: float = 512
    target_backlog_seconds: float = 5.0
    down_after_checks: int = 3
    max_cpu_percent: float = 90.0


@dataclass(frozen=True)
class ScalingInputs:
    backlog_pages: int
    busy_workers: int
    current_workers: int
    cpu_percent: float
    available_memory_mb: float
    worker_rss_mb: float = 0.0
    seconds_per_page: float = 0.0
    other_cpu_percent: float = 0.0


@dataclass(frozen=True)
class ScalingState:
    down_votes: int = 0
    last_target: int = 0


@dataclass(frozen=True)
class ScalingDecision:
    target: int
    reason: str
    state: ScalingState


def wanted_workers(inputs: ScalingInputs, limits: ScalingLimits) -> tuple[int, str]:
    backlog = inputs.backlog_pages
    if backlog <= 0:
        wanted, why = inputs.busy_workers, "no backlog"
    elif inputs.seconds_per_page > 0:
        seconds = backlog * inputs.seconds_per_page
        extra = math.ceil(seconds / limits.target_backlog_seconds)
        wanted = inputs.busy_workers + min(backlog, extra)
        why = f"backlog {backlog} pages ≈ {seconds:.0f} s"
    else:
        wanted, why = inputs.busy_workers + backlog, f"backlog {backlog} pages"
    wanted = min(wanted, inputs.busy_workers + backlog)
    return max(limits.min_workers, min(limits.max_workers, wanted)), why


def decide_worker_count(inputs: ScalingInputs, limits: ScalingLimits, state: ScalingState) -> ScalingDecision:
    current = max(limits.min_workers, min(limits.max_workers, inputs.current_workers))
    if inputs.available_memory_mb < limits.min_free_memory_mb:
        target = max(limits.min_workers, current - 1)
        reason = f"memory pressure: {inputs.available_memory_mb:.0f} MB available < {limits.min_free_memory_mb:.0f} MB"
        return ScalingDecision(target, reason, ScalingState(0, target))
    wanted, why = wanted_workers(inputs, limits)
    if wanted > current:
        needed_mb = limits.min_free_memory_mb + 1.5 * inputs.worker_rss_mb
        if inputs.available_memory_mb < needed_mb:
            return ScalingDecision(current, f"{why}, but no memory headroom ({inputs.available_memory_mb:.0f} MB "
                                            f"< {needed_mb:.0f} MB)", ScalingState(0, current))
        if inputs.other_cpu_percent > limits.max_cpu_percent:
            return ScalingDecision(current, f"{why}, but other processes use {inputs.other_cpu_percent:.0f} % CPU",
                                   ScalingState(0, current))
        return ScalingDecision(wanted, f"{why} → {wanted} workers", ScalingState(0, wanted))
    if wanted < current:
        votes = state.down_votes + 1
        if votes >= limits.down_after_checks:
            target = max(wanted, current - 1)
            return ScalingDecision(target, f"idle for {votes} checks ({why})", ScalingState(0, target))
        return ScalingDecision(current, "steady", replace(state, down_votes=votes, last_target=current))
    return ScalingDecision(current, "steady", ScalingState(0, current))


class ResourceProbe:
    """System CPU and memory through psutil; cheap calls only, never an interval."""

    def __init__(self) -> None:
        psutil.cpu_percent(None)  # primes the counter

    def sample(self) -> tuple[float, float]:
        return psutil.cpu_percent(None), psutil.virtual_memory().available / 2**20

    def rss_mb(self, pids: Iterable[int]) -> dict[int, float]:
        sizes = {}
        for pid in pids:
            try:
                sizes[pid] = psutil.Process(pid).memory_info().rss / 2**20
            except psutil.Error:
                continue
        return sizes


class FakeProbe:
    """Scripted (cpu percent, available MB) samples for tests; the last one repeats."""

    def __init__(self, samples: Sequence[tuple[float, float]]) -> None:
        self.samples = list(samples)
        self.calls = 0

    def sample(self) -> tuple[float, float]:
        value = self.samples[min(self.calls, len(self.samples) - 1)]
        self.calls += 1
        return value

    def rss_mb(self, pids: Iterable[int]) -> dict[int, float]:
        return {pid: 100.0 for pid in pids}
