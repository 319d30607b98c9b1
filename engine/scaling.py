"""The adaptive worker-count policy: a pure function, and the psutil probe that feeds it.

``decide_worker_count(inputs, limits, state)`` maps what the parent sees (ready pages, busy
workers, CPU, memory, worker RSS, the recent time per page) to a target worker count and a reason
a person can read. It starts and stops nothing: the pool applies the target (engine.pool), the
scheduler samples the inputs about once a second (engine.scheduler). The policy follows dask's
adaptive deployments: a target from the backlog, up at once, down only when several checks agree.

The steps, in the order ``decide_worker_count`` applies them:

1. **Bounds.** The current count is read clamped to [min_workers, max_workers]; every target is
   clamped too, so a fixed pool (min == max) never changes.
2. **Memory pressure.** Available memory below ``min_free_memory_mb``: one worker fewer at once,
   whatever the backlog (never below min). Each check under pressure retires one more. After a
   check under pressure, no worker is added for ``pressure_cool_down_checks`` checks: memory
   freed by the retired worker is no room for a new one that would only bring the pressure back.
3. **Wanted from the backlog.** backlog seconds = ready pages × seconds per page; wanted = busy
   workers + ceil(backlog seconds / ``target_backlog_seconds``). With no page time measured yet,
   one page per worker per target period is assumed: one worker per ready page. Never more than
   busy + ready pages (a worker without a page to take is waste); clamped to [min, max].
4. **Up at once, with headroom.** When wanted > current the target rises in this very check, as
   far as the headroom allows, so that other processes eating the CPU block growth:

   - CPU, cores known (``cpu_count``): one new worker per idle core (``cpu_count × (100 -
     cpu_percent) / 100``, half an idle core counts), and, when ``other_cpu_percent`` is
     measured, no more workers in all than the cores other processes leave. Our own busy workers
     never block growth up to the core count (a flat threshold would: 15 busy workers of ours on
     16 cores already read 94 %).
   - CPU, cores unknown: no growth while the system CPU (or other processes' CPU) is at or above
     ``max_cpu_percent``: another worker would only time-slice.
   - Memory: no more new workers than fit: each needs 1.5 × the largest worker's RSS (with the
     programs it started: tesseract is a child of its worker) above ``min_free_memory_mb`` (just
     ``min_free_memory_mb`` while no RSS is known).
   - Cool-down: none at all during the cool-down after memory pressure (step 2).
5. **Down only when checks agree.** When wanted < current the check votes to scale down; after
   ``down_after_checks`` consecutive votes the target drops to the *highest* count wanted during
   those checks. Any check that wants as many workers as run now (or more) resets the votes.
   Dropping to the highest wanted, not the last, is what keeps a backlog oscillating between 0
   and a few pages from flapping the count down and back up.
6. **Steady** otherwise.

Every decision carries a reason: ``"backlog 40 pages ≈ 20 s → 4 workers"``,
``"memory pressure: 300 MB available < 512 MB"``, ``"idle for 3 checks → 1 worker"``, ``"steady"``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import psutil

RSS_HEADROOM_FACTOR = 1.5  # a new worker needs this many times the largest worker's RSS


@dataclass(frozen=True)
class ScalingLimits:
    min_workers: int
    max_workers: int
    min_free_memory_mb: float = 512
    target_backlog_seconds: float = 5.0
    down_after_checks: int = 3
    max_cpu_percent: float = 90.0
    pressure_cool_down_checks: int = 10  # checks after memory pressure during which no worker is added

    def __post_init__(self) -> None:
        if self.min_workers < 0 or self.max_workers < max(1, self.min_workers):
            raise ValueError(f"need 0 <= min_workers <= max_workers and max_workers >= 1, "
                             f"not {self.min_workers}..{self.max_workers}")
        if self.target_backlog_seconds <= 0:
            raise ValueError(f"target_backlog_seconds must be positive, not {self.target_backlog_seconds}")
        if self.down_after_checks < 1:
            raise ValueError(f"down_after_checks must be at least 1, not {self.down_after_checks}")
        if self.pressure_cool_down_checks < 0:
            raise ValueError(f"pressure_cool_down_checks must be 0 or more, not {self.pressure_cool_down_checks}")

    def clamp(self, count: int) -> int:
        return max(self.min_workers, min(self.max_workers, count))


@dataclass(frozen=True)
class ScalingInputs:
    backlog_pages: int  # queued and ready to run now (retries still waiting out a backoff excluded)
    busy_workers: int
    current_workers: int
    cpu_percent: float  # system-wide, 0..100
    available_memory_mb: float
    worker_rss_mb: float = 0.0  # the largest worker's RSS with its children's, 0 when unknown
    seconds_per_page: float = 0.0  # recent mean, 0 when unknown
    other_cpu_percent: float = 0.0  # CPU of processes other than ours (0..100), 0 when unknown
    cpu_count: int = 0  # cores of the machine, 0 when unknown


@dataclass(frozen=True)
class ScalingState:
    down_votes: int = 0  # consecutive checks that wanted fewer workers than were running
    last_target: int = 0
    down_peak: int = 0  # the most workers any of those checks wanted
    cool_down: int = 0  # checks left after memory pressure during which no worker is added


@dataclass(frozen=True)
class ScalingDecision:
    target: int
    reason: str
    state: ScalingState
    held_back: str = ""  # why the target is below what the backlog wants (step 4), "" when it is not


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def wanted_from_backlog(inputs: ScalingInputs, limits: ScalingLimits) -> tuple[int, str]:
    """Step 3: the worker count the backlog asks for, clamped, and a phrase saying why."""
    backlog = max(0, inputs.backlog_pages)
    busy = max(0, inputs.busy_workers)
    if backlog == 0:
        return limits.clamp(busy), "no backlog"
    if inputs.seconds_per_page > 0:
        seconds = backlog * inputs.seconds_per_page
        extra = math.ceil(seconds / limits.target_backlog_seconds)
        why = f"backlog {backlog} pages ≈ {seconds:.0f} s"
    else:
        extra = backlog  # one page per worker per target period
        why = f"backlog {backlog} pages (no page time yet)"
    wanted = min(busy + extra, busy + backlog)
    return limits.clamp(wanted), why


def cpu_room(inputs: ScalingInputs, limits: ScalingLimits) -> tuple[int | None, str]:
    """Step 4, CPU: how many workers the idle CPU takes now (None: no limit), and why not more."""
    others = inputs.other_cpu_percent
    if inputs.cpu_count <= 0:  # cores unknown: a plain threshold on the busiest reading
        busy = max(inputs.cpu_percent, others)
        if busy < limits.max_cpu_percent:
            return None, ""
        by_others = f" (other processes {others:.0f} %)" if others > 0 else ""
        return 0, f"no CPU headroom: {busy:.0f} % busy{by_others} ≥ {limits.max_cpu_percent:.0f} %"
    cores = inputs.cpu_count
    idle_cores = cores * (100.0 - inputs.cpu_percent) / 100.0
    room = math.floor(idle_cores + 0.5)  # half an idle core is room for a worker
    why = f"{idle_cores:.1f} of {cores} cores idle ({inputs.cpu_percent:.0f} % busy)"
    if others > 0:  # measured: the cores other processes leave us, minus the workers we run
        left = math.floor(cores * (100.0 - others) / 100.0 + 0.5) - max(0, inputs.current_workers)
        if left < room:
            room, why = left, f"other processes use {others:.0f} % of {cores} cores"
    room = max(0, room)
    return room, (f"no CPU headroom: {why}" if room == 0 else f"CPU for {room} more: {why}")


def memory_room(inputs: ScalingInputs, limits: ScalingLimits) -> tuple[int | None, str]:
    """Step 4, memory: how many workers fit now (None: no limit known), and why not more."""
    spare_mb = inputs.available_memory_mb - limits.min_free_memory_mb
    if inputs.worker_rss_mb <= 0:
        if spare_mb <= 0:
            return 0, (f"no memory headroom: {inputs.available_memory_mb:.0f} MB available "
                       f"≤ {limits.min_free_memory_mb:.0f} MB")
        return None, ""
    room = max(0, math.floor(spare_mb / (RSS_HEADROOM_FACTOR * inputs.worker_rss_mb)))
    if room == 0:
        return 0, (f"no memory headroom: {inputs.available_memory_mb:.0f} MB available < "
                   f"{limits.min_free_memory_mb:.0f} MB + {RSS_HEADROOM_FACTOR:g} × {inputs.worker_rss_mb:.0f} MB")
    return room, f"memory for {room} more"


def growth_room(inputs: ScalingInputs, limits: ScalingLimits) -> tuple[int | None, str]:
    """Step 4: how many workers may be added now (None: no limit), and the tighter limit's reason."""
    limits_found = [r for r in (cpu_room(inputs, limits), memory_room(inputs, limits)) if r[0] is not None]
    if not limits_found:
        return None, ""
    return min(limits_found, key=lambda r: r[0])  # type: ignore[arg-type, return-value]


def decide_worker_count(inputs: ScalingInputs, limits: ScalingLimits, state: ScalingState) -> ScalingDecision:
    """The target worker count for this check, its reason, and the state for the next check."""
    # 1. bounds
    current = limits.clamp(inputs.current_workers)

    # 2. memory pressure: retire one at once, whatever the backlog
    if inputs.available_memory_mb < limits.min_free_memory_mb:
        target = limits.clamp(current - 1)
        reason = (f"memory pressure: {inputs.available_memory_mb:.0f} MB available "
                  f"< {limits.min_free_memory_mb:.0f} MB")
        if target == current:
            reason += f" (already at the minimum, {_workers(current)})"
        after = ScalingState(last_target=target, cool_down=limits.pressure_cool_down_checks)
        return ScalingDecision(target, reason, after)
    cool_down = max(0, state.cool_down - 1)

    # 3. what the backlog asks for
    wanted, why = wanted_from_backlog(inputs, limits)

    # 4. up at once, as far as the headroom allows
    if wanted > current:
        if state.cool_down:
            more = "1 check" if state.cool_down == 1 else f"{state.cool_down} checks"
            why_not = f"cooling down after memory pressure (no worker added for {more} more)"
            reason = f"{why} wants {_workers(wanted)}, but {why_not}"
            return ScalingDecision(current, reason, ScalingState(last_target=current, cool_down=cool_down), why_not)
        room, why_not = growth_room(inputs, limits)
        target = wanted if room is None else min(wanted, current + room)
        if target == current:
            reason = f"{why} wants {_workers(wanted)}, but {why_not}"
        elif target < wanted:
            reason = f"{why} → {_workers(target)} ({why_not}; wanted {wanted})"
        else:
            reason = f"{why} → {_workers(target)}"
        return ScalingDecision(target, reason, ScalingState(last_target=target), why_not if target < wanted else "")

    # 5. down only after down_after_checks consecutive checks agree
    if wanted < current:
        votes = state.down_votes + 1
        peak = max(wanted, state.down_peak) if state.down_votes else wanted
        if votes >= limits.down_after_checks:
            reason = f"idle for {votes} checks → {_workers(peak)} ({why})"
            return ScalingDecision(peak, reason, ScalingState(last_target=peak, cool_down=cool_down))
        reason = f"steady ({why}; {votes} of {limits.down_after_checks} checks to scale down)"
        return ScalingDecision(current, reason, ScalingState(down_votes=votes, last_target=current, down_peak=peak,
                                                             cool_down=cool_down))

    # 6. steady
    return ScalingDecision(current, "steady", ScalingState(last_target=current, cool_down=cool_down))


class ResourceProbe:
    """System CPU and memory through psutil: cheap calls only, never an interval.

    ``psutil.cpu_percent(None)`` measures the CPU since the previous call; calls closer together
    than ``min_interval`` return the previous reading, because a percentage over a few
    microseconds is noise (often 0 or 100). The counter is primed when the probe is made, so the
    first reading is taken ``min_interval`` later; until then there is no reading (``sample``
    says 0 %), and ``cpu_ready_in`` says how long the scheduler must wait before acting on one.
    """

    def __init__(self, min_interval: float = 0.25) -> None:
        self.min_interval = min_interval
        self._last_cpu = 0.0
        self._last_at = time.monotonic()
        self._measured = False  # a reading over at least min_interval has been taken
        self._processes: dict[int, psutil.Process] = {}
        self._readings: dict[tuple[int, float], tuple[float, int]] | None = None  # cpu_percent_of's last
        self._readings_at = time.monotonic()
        self.cpu_count = psutil.cpu_count() or os.cpu_count() or 1  # for ScalingInputs.cpu_count
        psutil.cpu_percent(None)  # primes the system counter

    def sample(self) -> tuple[float, float]:
        """(system CPU percent 0..100 since the last reading, available memory in MB)."""
        now = time.monotonic()
        if now - self._last_at >= self.min_interval:
            self._last_cpu = psutil.cpu_percent(None)
            self._last_at = now
            self._measured = True
        return self._last_cpu, psutil.virtual_memory().available / 2**20

    def cpu_ready_in(self) -> float:
        """Seconds until ``sample`` gives a real CPU reading (0 once it has given one)."""
        if self._measured:
            return 0.0
        return max(0.0, self._last_at + self.min_interval - time.monotonic())

    def rss_mb(self, pids: Iterable[int]) -> dict[int, float]:
        """RSS in MB of each process still alive among ``pids``."""
        sizes: dict[int, float] = {}
        for pid in pids:
            try:
                sizes[pid] = self._process(pid).memory_info().rss / 2**20
            except (psutil.Error, ValueError):
                self._processes.pop(pid, None)
        return sizes

    def cpu_percent_of(self, pids: Iterable[int]) -> float:
        """The share of the whole machine (0..100) used since the last call by those processes
        and every process they started (a worker's tesseract runs as its child): all of it is
        ours. The first call returns 0.

        ``cpu_percent - cpu_percent_of(our pids)`` estimates ``other_cpu_percent``. Programs that
        start and end between two calls (a tesseract takes half a second) are never seen alive,
        so each process is counted by its cumulative CPU time *including its children's that
        ended* (``children_user``/``children_system``): a child's time moves into its parent's
        count when it ends, and is then taken off the child's last reading, not counted twice.
        One scan of the process table a call (``children(recursive=True)`` of the run's process).
        """
        now = time.monotonic()
        wanted = set(pids)
        readings: dict[tuple[int, float], tuple[float, int]] = {}  # (pid, started) -> (CPU seconds, ppid)
        for process in self._family(wanted):
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    key = (process.pid, process.create_time())
                    readings[key] = (times.user + times.system + times.children_user + times.children_system,
                                     process.ppid())
            except (psutil.Error, ValueError):
                continue
        for pid in set(self._processes) - wanted:
            del self._processes[pid]
        before, self._readings = self._readings, readings
        elapsed, self._readings_at = now - self._readings_at, now
        if before is None or elapsed <= 0:
            return 0.0
        used = sum(seconds - before[key][0] if key in before else seconds for key, (seconds, _) in readings.items())
        alive = {pid for pid, _ in readings}
        for key, (seconds, ppid) in before.items():
            if key not in readings and ppid in alive:
                used -= seconds  # ended: its time is in its parent's count of ended children now
        return max(0.0, min(100.0, used / elapsed / self.cpu_count * 100.0))

    def _family(self, pids: set[int]) -> list[psutil.Process]:
        """The processes ``pids`` and all their descendants, each once."""
        found: dict[int, psutil.Process] = {}
        for pid in sorted(pids, key=lambda p: p != os.getpid()):  # the run's own process first: one scan
            if pid in found:
                continue
            try:
                process = self._process(pid)
                found[pid] = process
                for child in process.children(recursive=True):
                    found.setdefault(child.pid, child)
            except (psutil.Error, ValueError):
                self._processes.pop(pid, None)
        return list(found.values())

    def _process(self, pid: int) -> psutil.Process:
        process = self._processes.get(pid)
        if process is None:
            process = self._processes[pid] = psutil.Process(pid)
        return process


class FakeProbe:
    """Scripted readings for tests: ``samples`` are (cpu percent, available MB); the last repeats.

    ``rss`` is every worker's RSS in MB, or a mapping pid → MB; ``others`` the CPU percent that
    ``cpu_percent_of`` leaves to other processes.
    """

    def __init__(self, samples: Sequence[tuple[float, float]], rss: float | Mapping[int, float] = 100.0,
                 others: float = 0.0, cpu_count: int = 2) -> None:
        if not samples:
            raise ValueError("FakeProbe needs at least one (cpu percent, available MB) sample")
        self.samples = list(samples)
        self.rss = rss
        self.others = others
        self.cpu_count = cpu_count
        self.calls = 0

    def sample(self) -> tuple[float, float]:
        value = self.samples[min(self.calls, len(self.samples) - 1)]
        self.calls += 1
        return value

    def rss_mb(self, pids: Iterable[int]) -> dict[int, float]:
        if isinstance(self.rss, Mapping):
            return {pid: float(self.rss[pid]) for pid in pids if pid in self.rss}
        return {pid: float(self.rss) for pid in pids}

    def cpu_percent_of(self, pids: Iterable[int]) -> float:
        cpu, _ = self.samples[max(0, min(self.calls, len(self.samples)) - 1)]
        return max(0.0, cpu - self.others)
