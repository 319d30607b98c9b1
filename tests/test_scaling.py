"""The adaptive worker-count policy (pure, no processes) and the psutil probe."""

from __future__ import annotations

import itertools
import os

import pytest
from waiting import wait_until

from engine.scaling import (
    FakeProbe,
    ResourceProbe,
    ScalingDecision,
    ScalingInputs,
    ScalingLimits,
    ScalingState,
    decide_worker_count,
)

LIMITS = ScalingLimits(min_workers=1, max_workers=4, min_free_memory_mb=512)


def inputs(**changes) -> ScalingInputs:
    values = {"backlog_pages": 0, "busy_workers": 0, "current_workers": 1, "cpu_percent": 20.0,
                  "available_memory_mb": 8000.0, "worker_rss_mb": 0.0, "seconds_per_page": 0.0}
    values.update(changes)
    return ScalingInputs(**values)


SITUATIONS = [
    pytest.param(inputs(backlog_pages=40, seconds_per_page=0.5), LIMITS, 4,
                 "backlog 40 pages ≈ 20 s → 4 workers", id="backlog-seconds"),
    pytest.param(inputs(backlog_pages=12, seconds_per_page=0.5, current_workers=1), LIMITS, 2,
                 "backlog 12 pages ≈ 6 s → 2 workers", id="ceil-of-backlog-over-target"),
    pytest.param(inputs(backlog_pages=3, busy_workers=1), LIMITS, 4,
                 "backlog 3 pages (no page time yet) → 4 workers", id="unknown-page-time-one-per-page"),
    pytest.param(inputs(backlog_pages=2, busy_workers=0), LIMITS, 2,
                 "no page time yet) → 2 workers", id="unknown-page-time-capped-by-pages"),
    pytest.param(inputs(backlog_pages=1, busy_workers=1, seconds_per_page=20.0), LIMITS, 2,
                 "backlog 1 pages ≈ 20 s → 2 workers", id="never-more-than-busy-plus-ready"),
    pytest.param(inputs(backlog_pages=5000, seconds_per_page=1.0), LIMITS, 4, "→ 4 workers", id="max-clamp"),
    pytest.param(inputs(backlog_pages=0, current_workers=0), ScalingLimits(2, 4), 2, "steady", id="min-clamp"),
    pytest.param(inputs(backlog_pages=40, current_workers=3, available_memory_mb=300.0), LIMITS, 2,
                 "memory pressure: 300 MB available < 512 MB", id="memory-pressure-retires-despite-backlog"),
    pytest.param(inputs(backlog_pages=40, current_workers=1, available_memory_mb=300.0), LIMITS, 1,
                 "already at the minimum", id="memory-pressure-never-below-min"),
    pytest.param(inputs(backlog_pages=40, current_workers=2, available_memory_mb=700.0, worker_rss_mb=200.0),
                 LIMITS, 2, "no memory headroom: 700 MB available < 512 MB + 1.5 × 200 MB", id="no-memory-headroom"),
    pytest.param(inputs(backlog_pages=40, current_workers=1, available_memory_mb=900.0, worker_rss_mb=200.0),
                 LIMITS, 2, "(memory for 1 more; wanted 4)", id="memory-for-one-more"),
    pytest.param(inputs(backlog_pages=40, current_workers=1, available_memory_mb=520.0), LIMITS, 4,
                 "→ 4 workers", id="unknown-rss-only-min-free"),
    pytest.param(inputs(backlog_pages=40, current_workers=2, cpu_percent=97.0), LIMITS, 2,
                 "no CPU headroom: 97 % busy ≥ 90 %", id="cores-unknown-cpu-saturated"),
    pytest.param(inputs(backlog_pages=40, current_workers=2, cpu_percent=60.0, other_cpu_percent=92.0), LIMITS, 2,
                 "(other processes 92 %)", id="cores-unknown-other-processes-block-growth"),
    pytest.param(inputs(backlog_pages=40, current_workers=1, busy_workers=1, cpu_percent=100.0, cpu_count=2),
                 LIMITS, 1, "no CPU headroom: 0.0 of 2 cores idle (100 % busy)", id="another-process-holds-a-core"),
    pytest.param(inputs(backlog_pages=400, seconds_per_page=1.0, current_workers=1, cpu_percent=30.0, cpu_count=4),
                 LIMITS, 4, "→ 4 workers", id="idle-cores-grow-at-once"),
    pytest.param(inputs(backlog_pages=400, seconds_per_page=1.0, current_workers=1, cpu_percent=55.0, cpu_count=4),
                 LIMITS, 3, "(CPU for 2 more: 1.8 of 4 cores idle (55 % busy); wanted 4)", id="idle-cores-limit"),
    pytest.param(inputs(backlog_pages=400, seconds_per_page=1.0, current_workers=1, cpu_percent=60.0,
                        other_cpu_percent=50.0, cpu_count=4),
                 LIMITS, 2, "(CPU for 1 more: other processes use 50 % of 4 cores; wanted 4)",
                 id="cores-other-processes-leave"),
    pytest.param(inputs(backlog_pages=400, seconds_per_page=1.0, busy_workers=15, current_workers=15,
                        cpu_percent=94.0, cpu_count=16),
                 ScalingLimits(1, 16), 16, "→ 16 workers", id="own-busy-workers-never-block-the-last-core"),
    pytest.param(inputs(backlog_pages=0, busy_workers=2, current_workers=2), LIMITS, 2, "steady", id="steady"),
    pytest.param(inputs(backlog_pages=0, busy_workers=0, current_workers=3), LIMITS, 3,
                 "1 of 3 checks to scale down", id="first-idle-check-votes-only"),
]


@pytest.mark.parametrize(("situation", "limits", "target", "reason"), SITUATIONS)
def test_situations(situation: ScalingInputs, limits: ScalingLimits, target: int, reason: str) -> None:
    decision = decide_worker_count(situation, limits, ScalingState())
    assert decision.target == target, decision.reason
    assert reason in decision.reason
    assert decision.state.last_target == target


def run_checks(limits: ScalingLimits, checks: list[dict], current: int) -> list[ScalingDecision]:
    """Feed the policy check after check; the pool is assumed to apply each target at once."""
    state, decisions = ScalingState(), []
    for changes in checks:
        decision = decide_worker_count(inputs(current_workers=current, **changes), limits, state)
        decisions.append(decision)
        state, current = decision.state, decision.target
    return decisions


def test_idle_scales_down_only_after_three_agreeing_checks() -> None:
    decisions = run_checks(LIMITS, [{"busy_workers": 1}] * 3, current=4)
    assert [d.target for d in decisions] == [4, 4, 1]
    assert "1 of 3" in decisions[0].reason and "2 of 3" in decisions[1].reason
    assert "idle for 3 checks → 1 worker" in decisions[2].reason
    assert decisions[2].state.down_votes == 0


def test_a_check_that_wants_the_workers_resets_the_votes() -> None:
    checks = [{"busy_workers": 1}, {"busy_workers": 1}, {"busy_workers": 4}, {"busy_workers": 1}, {"busy_workers": 1}]
    decisions = run_checks(LIMITS, checks, current=4)
    assert [d.target for d in decisions] == [4, 4, 4, 4, 4]
    assert decisions[2].state.down_votes == 0 and decisions[-1].state.down_votes == 2


def test_down_goes_to_the_most_any_agreeing_check_wanted() -> None:
    checks = [{"busy_workers": 1}, {"busy_workers": 3}, {"busy_workers": 2}]
    decisions = run_checks(LIMITS, checks, current=4)
    assert decisions[-1].target == 3


@pytest.mark.parametrize("pages", [1, 2, 3])
def test_oscillating_backlog_does_not_flap(pages: int) -> None:
    # one worker busy; the queue is empty at one check and holds a few pages at the next
    checks = [{"busy_workers": 1, "backlog_pages": 0 if n % 2 == 0 else pages} for n in range(30)]
    targets = [d.target for d in run_checks(LIMITS, checks, current=4)]
    changes = [(a, b) for a, b in itertools.pairwise(targets) if a != b]
    assert len(changes) <= 1, targets  # at most one step down, then stable
    assert all(b < a for a, b in changes), targets  # never back up
    assert targets[-1] == 1 + pages  # enough for the pages that keep coming


def test_oscillation_around_the_running_count_keeps_it() -> None:
    # two busy, 0 or 3 ready pages at 1 s each: wanted alternates 2 and 3 with 3 running
    checks = [{"busy_workers": 2, "backlog_pages": 0 if n % 2 == 0 else 3, "seconds_per_page": 1.0} for n in range(20)]
    assert {d.target for d in run_checks(LIMITS, checks, current=3)} == {3}


def test_memory_pressure_retires_one_per_check_even_with_backlog() -> None:
    checks = [{"backlog_pages": 100, "busy_workers": 4, "available_memory_mb": 200.0}] * 5
    targets = [d.target for d in run_checks(LIMITS, checks, current=4)]
    assert targets == [3, 2, 1, 1, 1]


def test_no_worker_is_added_back_during_the_cool_down_after_memory_pressure() -> None:
    limits = ScalingLimits(min_workers=1, max_workers=4, min_free_memory_mb=512, pressure_cool_down_checks=3)
    pressure = {"backlog_pages": 100, "busy_workers": 3, "available_memory_mb": 400.0, "worker_rss_mb": 100.0}
    relief = {**pressure, "available_memory_mb": 900.0}  # the retired worker's memory is free again
    decisions = run_checks(limits, [pressure] + [relief] * 4, current=3)
    assert [d.target for d in decisions] == [2, 2, 2, 2, 4]  # three checks of cool-down, then growth again
    assert "cooling down after memory pressure (no worker added for 3 checks more)" in decisions[1].reason
    assert "for 1 check more" in decisions[3].reason and decisions[3].held_back


def test_the_cool_down_lets_workers_go_but_not_come() -> None:
    limits = ScalingLimits(min_workers=1, max_workers=4, min_free_memory_mb=512, pressure_cool_down_checks=5)
    checks = [{"busy_workers": 3, "available_memory_mb": 100.0}] + [{"busy_workers": 1}] * 3
    decisions = run_checks(limits, checks, current=4)
    assert [d.target for d in decisions] == [3, 3, 3, 1]  # idle checks still scale down
    assert decisions[-1].state.cool_down == 2


def test_memory_pressure_clears_pending_down_votes() -> None:
    state = ScalingState(down_votes=2, last_target=3, down_peak=2)
    decision = decide_worker_count(inputs(current_workers=3, available_memory_mb=100.0), LIMITS, state)
    assert decision.target == 2 and decision.state.down_votes == 0


def test_fixed_workers_never_change() -> None:
    fixed = ScalingLimits(min_workers=2, max_workers=2)
    grid = itertools.product([0, 1, 50, 5000], [0, 1, 2], [0, 1, 2, 3], [5.0, 99.0], [100.0, 600.0, 9000.0],
                             [0.0, 300.0], [0.0, 0.1, 30.0])
    state = ScalingState()
    for backlog, busy, current, cpu, memory, rss, seconds in grid:
        decision = decide_worker_count(
            ScalingInputs(backlog, busy, current, cpu, memory, rss, seconds), fixed, state)
        assert decision.target == 2, decision
        state = decision.state


def test_the_policy_is_pure() -> None:
    situation, state = inputs(backlog_pages=7, busy_workers=1, seconds_per_page=2.0), ScalingState(1, 2, 1)
    first = decide_worker_count(situation, LIMITS, state)
    assert first == decide_worker_count(situation, LIMITS, state)
    assert state == ScalingState(1, 2, 1)


@pytest.mark.parametrize(("low", "high"), [(3, 2), (0, 0), (-1, 2)])
def test_bad_limits_are_refused(low: int, high: int) -> None:
    with pytest.raises(ValueError):
        ScalingLimits(min_workers=low, max_workers=high)


def test_resource_probe_reads_this_machine() -> None:
    probe = ResourceProbe(min_interval=60.0)
    cpu, available = probe.sample()
    again, _ = probe.sample()
    assert 0.0 <= cpu <= 100.0 and available > 0
    assert again == cpu  # within min_interval the last reading is kept: no noise from tiny intervals
    sizes = probe.rss_mb([os.getpid(), 2**22 + 12345])
    assert set(sizes) == {os.getpid()} and sizes[os.getpid()] > 1.0
    assert 0.0 <= probe.cpu_percent_of([os.getpid()]) <= 100.0
    assert probe.cpu_count >= 1


def test_the_probe_has_no_cpu_reading_until_min_interval_after_it_was_primed() -> None:
    probe = ResourceProbe(min_interval=60.0)
    probe.sample()
    assert 0.0 < probe.cpu_ready_in() <= 60.0  # the 0 % it says now is no measurement
    probe.min_interval = 0.0
    assert probe.cpu_ready_in() == 0.0
    cpu, _ = probe.sample()
    probe.min_interval = 60.0
    assert probe.cpu_ready_in() == 0.0 and 0.0 <= cpu <= 100.0  # measured once: ready for good


def test_fake_probe_plays_its_script_and_repeats_the_last() -> None:
    probe = FakeProbe([(10.0, 8000.0), (50.0, 300.0)], rss={7: 250.0}, others=30.0)
    assert [probe.sample() for _ in range(3)] == [(10.0, 8000.0), (50.0, 300.0), (50.0, 300.0)]
    assert probe.rss_mb([7, 8]) == {7: 250.0}
    assert probe.cpu_percent_of([7]) == 20.0 and probe.cpu_count == 2
    with pytest.raises(ValueError):
        FakeProbe([])


BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end:\n    pass\n"


def test_the_probe_counts_the_cpu_of_programs_our_processes_started_even_short_lived_ones() -> None:
    import subprocess
    import sys

    probe = ResourceProbe()
    me = os.getpid()
    probe.cpu_percent_of([me])  # the first reading
    before = probe._readings_at
    # a child that burns 0.4 s of CPU and ends between two readings: never seen alive
    subprocess.run([sys.executable, "-c", BURN.format(seconds=0.4)], check=True)
    share = probe.cpu_percent_of([me])
    elapsed = probe._readings_at - before
    used = share / 100 * elapsed * probe.cpu_count
    assert used >= 0.35  # the child's CPU counts as ours
    # one alive at a reading and ended before the next is counted once, not twice
    child = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=0.6) + "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    import psutil

    wait_until(lambda: psutil.Process(child.pid).cpu_times().user + psutil.Process(child.pid).cpu_times().system
               >= 0.6 * 0.9, what="the child's CPU burnt")
    probe.cpu_percent_of([me])
    middle = probe._readings_at
    child.communicate(b"")
    last = probe.cpu_percent_of([me])
    counted = last / 100 * (probe._readings_at - middle) * probe.cpu_count
    assert counted < 0.3, "a child's CPU counted again when it ended"
