"""Circuit breakers applied to single plugin calls: the worker's gate and the parent's keeper."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine import hookimpl
from engine.breakers import BreakerBoard, CircuitOpenError
from engine.errors import TransientError
from engine.gates import BreakerGates, CallGate
from engine.pagequeue import Task
from engine.progress import ProgressBoard, SlotWriter
from engine.records import PageTask
from engine.registry import PluginRegistry

FLAKY = str(Path(__file__).parent / "flaky.py")
BOARD = ProgressBoard(1, multiprocessing.get_context("spawn"))
SEEN_IN_CALL: list[int] = []


class Watcher:
    """A validate plugin that notes which call the progress slot says is running."""

    name = "watcher"

    @hookimpl
    def pagemill_validate(self, page, fields, config):
        SEEN_IN_CALL.append(BOARD.plugin_now(0))
        return []


def registry_and_gate(tmp_path) -> tuple[PluginRegistry, CallGate, SimpleNamespace]:
    registry = PluginRegistry.for_run([FLAKY, "plugins.noop"], [Watcher()], load_entry_points=False)
    gate = CallGate(registry, SlotWriter(BOARD.array, 0))
    config = SimpleNamespace(options={"flaky_state": str(tmp_path / "state"), "noop_ms": 0})
    return registry, gate, config


def bit(gate: CallGate, plugin: str, hook: str) -> int:
    return 1 << gate.keys.index((plugin, hook))


def flaky_page() -> PageTask:
    return PageTask("a.flaky", "a" * 8, 0, 1, kind="flaky", has_text_layer=True)


def noop_page() -> PageTask:
    return PageTask("b.noop", "b" * 8, 0, 1, kind="noop", has_text_layer=True)


def test_the_call_table_names_each_stage_hook_implementation(tmp_path) -> None:
    _, gate, _ = registry_and_gate(tmp_path)
    assert ("flaky", "pagemill_load_page") in gate.keys
    assert ("plugins.noop", "pagemill_load_page") in gate.keys
    assert ("watcher", "pagemill_validate") in gate.keys
    assert not any(plugin == "faults" for plugin, _ in gate.keys)
    assert len(set(gate.keys)) == len(gate.keys)


def test_a_blocked_call_fails_fast_and_pages_that_do_not_make_it_go_on(tmp_path) -> None:
    registry, gate, config = registry_and_gate(tmp_path)
    flaky_load = bit(gate, "flaky", "pagemill_load_page")
    gate.begin(blocked=flaky_load, trial=0)
    content = registry.hook.pagemill_load_page(page=noop_page(), config=config)
    assert content.text.startswith("noop page")  # the noop plugin answered first: flaky never called
    assert gate.called == bit(gate, "plugins.noop", "pagemill_load_page") and gate.failed == -1
    gate.begin(blocked=flaky_load, trial=0)
    with pytest.raises(CircuitOpenError, match="flaky.pagemill_load_page"):
        registry.hook.pagemill_load_page(page=flaky_page(), config=config)
    assert gate.failed == gate.keys.index(("flaky", "pagemill_load_page"))
    assert not (tmp_path / "state").exists()  # the plugin itself was not called
    gate.begin(blocked=flaky_load, trial=flaky_load)  # the trial goes through
    assert registry.hook.pagemill_load_page(page=flaky_page(), config=config).text == "flaky page 1"
    assert gate.called & flaky_load


def test_the_call_that_raised_is_named(tmp_path) -> None:
    registry, gate, config = registry_and_gate(tmp_path)
    config.options["flaky_failures"] = 1
    gate.begin(0, 0)
    with pytest.raises(TransientError):
        registry.hook.pagemill_load_page(page=flaky_page(), config=config)
    assert gate.keys[gate.failed] == ("flaky", "pagemill_load_page")
    assert not gate.called & bit(gate, "flaky", "pagemill_load_page")


def test_the_progress_slot_shows_the_call_running(tmp_path) -> None:
    registry, gate, config = registry_and_gate(tmp_path)
    SEEN_IN_CALL.clear()
    gate.begin(0, 0)
    registry.hook.pagemill_validate(page=noop_page(), fields={}, config=config)
    assert SEEN_IN_CALL == [gate.keys.index(("watcher", "pagemill_validate"))]
    assert BOARD.plugin_now(0) == -1


# -------------------------------------------------------------------------- the parent's keeper
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


KEYS = [("ocr", "pagemill_ocr"), ("extract", "pagemill_extract")]
OCR, EXTRACT = 1, 2


def keeper(threshold: int = 1, reset: float = 10.0) -> tuple[BreakerGates, Clock]:
    clock = Clock()
    gates = BreakerGates(BreakerBoard(threshold, reset, clock=clock))
    gates.learn(KEYS)
    return gates, clock


def task() -> Task:
    return Task(1, "page", None, 2, 1)


def test_a_success_closes_only_the_breakers_of_the_calls_it_made() -> None:
    gates, clock = keeper()
    gates.failure(KEYS[0])
    gates.failure(KEYS[1])
    assert gates.blocked_mask() == OCR | EXTRACT
    clock.now = 110.0
    for key in KEYS:
        assert gates.breaker(key).allow()  # both half-open
    gates.settle(task(), called=EXTRACT, failed_key=None, transient=False)  # a page that never ran OCR
    assert gates.breaker(KEYS[1]).state == "closed"
    assert gates.breaker(KEYS[0]).state == "half_open"
    assert gates.blocked_mask() == OCR


def test_an_open_breaker_waits_for_its_pause_whatever_succeeds() -> None:
    gates, clock = keeper()
    gates.failure(KEYS[0])
    clock.now = 105.0
    gates.settle(task(), called=OCR, failed_key=None, transient=False)  # sent before it opened
    assert gates.breaker(KEYS[0]).state == "open"


def test_a_trial_not_used_is_handed_back() -> None:
    gates, clock = keeper()
    gates.failure(KEYS[0])
    clock.now = 110.0
    trial = task()
    gates.hold(KEYS[0], trial)
    assert gates.release() == [trial] and trial.trial == OCR
    assert gates.breaker(KEYS[0]).free_at() is not None  # the trial is taken
    gates.settle(trial, called=0, failed_key=None, transient=False)  # it failed before OCR
    assert trial.trial == 0 and gates.breaker(KEYS[0]).free_at() is None


def test_held_pages_go_one_as_the_trial_then_all_once_closed() -> None:
    gates, clock = keeper(threshold=1, reset=10.0)
    gates.failure(KEYS[0])
    held = [Task(seq, "page", None, 2, 1) for seq in range(5)]
    for item in held:
        gates.hold(KEYS[0], item)
    assert gates.release() == [] and gates.held_count == 5
    assert gates.next_release() == 110.0
    clock.now = 110.0
    trial = gates.release()
    assert trial == [held[0]] and gates.held_count == 4
    assert gates.release() == []  # one trial at a time
    gates.settle(trial[0], called=OCR, failed_key=None, transient=False)
    assert gates.breaker(KEYS[0]).state == "closed"
    assert gates.release() == held[1:] and gates.held_count == 0
    assert gates.next_release() is None


def test_held_pages_of_a_cancelled_job_are_dropped() -> None:
    gates, _ = keeper()
    gates.failure(KEYS[0])
    keep, drop = Task(1, "page", None, 2, 1, job=1), Task(2, "page", None, 2, 1, job=2)
    gates.hold(KEYS[0], keep)
    gates.hold(KEYS[0], drop)
    assert gates.remove_where(lambda t: t.job == 2) == [drop]
    assert gates.held_count == 1
