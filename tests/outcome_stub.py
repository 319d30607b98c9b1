"""A Scheduler over a pool stand-in, driven by hand (tests only): no processes, a fake clock.

``StubPool`` keeps what the scheduler's outcome handling asks of a pool: which tasks a worker
holds, which one it has in hand and in which plugin call, and what was killed or started.
``deliver(scheduler, event)`` hands one pool event to the scheduler and returns what it yields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.config import EngineConfig
from engine.pagequeue import N_CLASSES, Task, next_seq
from engine.pool import PoolEvent
from engine.records import Document, PageTask
from engine.scaling import FakeProbe
from engine.scheduler import Scheduler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StubWorker:
    slot: int
    pid: int = 0
    ready: bool = True
    in_flight: list[Task] = field(default_factory=list)
    retiring: str = ""
    fault: str = ""
    tasks_done: int = 0


class StubPool:
    depth = 2
    time_bounded = True
    can_revoke = False

    def __init__(self) -> None:
        self.workers: dict[int, StubWorker] = {}
        self.held_by_rank = [0] * N_CLASSES
        self.call_table: list[Any] | None = None
        self.in_hand: dict[int, int] = {}  # slot -> seq
        self.plugin: dict[int, int] = {}  # slot -> call index
        self.killed: list[tuple[int, str]] = []
        self.fills = 0
        self.late: list[StubWorker] = []  # what not_started() answers
        self.target = 0
        self.peak_workers = 0

    def worker(self, slot: int, *tasks: Task, in_hand: Task | None = None, plugin: int = -1,
               ready: bool = True) -> StubWorker:
        worker = StubWorker(slot, pid=1000 + slot, ready=ready, in_flight=list(tasks))
        self.workers[slot] = worker
        if in_hand is not None:
            self.in_hand[slot] = in_hand.seq
        self.plugin[slot] = plugin
        return worker

    # what the outcome handling calls
    def complete(self, worker: StubWorker, seq: int) -> Task | None:
        task = next((t for t in worker.in_flight if t.seq == seq), None)
        if task is not None:
            worker.in_flight.remove(task)
        return task

    def running_task(self, worker: StubWorker) -> Task | None:
        seq = self.in_hand.get(worker.slot)
        return next((t for t in worker.in_flight if t.seq == seq), None)

    def plugin_in_hand(self, worker: StubWorker) -> int:
        return self.plugin.get(worker.slot, -1)

    def take_all(self, worker: StubWorker) -> list[Task]:
        tasks, worker.in_flight = worker.in_flight, []
        return tasks

    def fill(self, why: str = "") -> None:
        self.fills += 1

    def kill(self, worker: StubWorker, reason: str) -> None:
        self.killed.append((worker.slot, reason))

    def overdue(self, timeout: float) -> list[Any]:
        return []

    def not_started(self, seconds: float) -> list[StubWorker]:
        return list(self.late)

    def in_flight_count(self) -> int:
        return sum(len(w.in_flight) for w in self.workers.values())

    # what scaling calls
    @property
    def live(self) -> list[StubWorker]:
        return [w for w in self.workers.values() if not w.retiring]

    def busy_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.in_flight)

    def check_memory(self, limit_mb: float) -> dict[int, float]:
        return {}

    def resize(self, target: int, reason: str) -> None:
        self.target = target


def scheduler(keys: list[tuple[str, str]] | None = None, probe: Any = None, **changes: Any) -> tuple[Scheduler, StubPool, Clock]:
    """A Scheduler on a StubPool; ``keys``: the workers' call table (plugin calls can be gated)."""
    values = {"workers": "2", "load_entry_points": False, "breaker_threshold": 1, "breaker_reset_seconds": 10.0,
              "max_attempts": 3, "retry_base_delay": 0.5}
    values.update(changes)
    clock = Clock()
    pool = StubPool()
    sched = Scheduler(EngineConfig(**values), pool, probe=probe or FakeProbe([(10.0, 8000.0)]), clock=clock)
    if keys is not None:
        sched.gates.learn(keys)
    return sched, pool, clock


def page(document: str = "doc.pdf", index: int = 0, attempts: int = 0) -> Task:
    payload = PageTask(document, document * 2, index, 10)
    return Task(next_seq(), "page", payload, 2, 10, attempts=attempts)


def ingest(document: str = "doc.pdf") -> Task:
    return Task(next_seq(), "ingest", Document(document, document * 2, 1), 2, 0)


def deliver(sched: Scheduler, event: PoolEvent) -> list[Any]:
    return list(sched._handle(event))


def died(worker: StubWorker, exitcode: int = -9) -> PoolEvent:
    return PoolEvent("died", worker, exitcode=exitcode)


def answer(worker: StubWorker, task: Task, kind: str, value: Any, called: int = 0, failed: int = -1) -> PoolEvent:
    return PoolEvent("message", worker, (task.seq, kind, value, called, failed))


__all__ = ["Clock", "StubPool", "StubWorker", "answer", "deliver", "died",
           "ingest", "page", "scheduler"]
