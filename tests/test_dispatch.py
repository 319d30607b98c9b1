"""What goes to which worker: one waiting place per worker, short tasks bounded by time, better
work taking a waiting place (no processes: a pool stand-in that records what it is told)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.breakers import BreakerBoard
from engine.dispatch import KNOWN_AFTER, WAIT_SECONDS, CostBook, Dispatcher
from engine.gates import BreakerGates
from engine.pagequeue import N_CLASSES, PageQueue, Task
from engine.workerhandle import hold, release
from engine.records import PRIORITY_RANKS, Document, PageTask

_seq = iter(range(1, 10**9))


def page(doc: str, index: int = 0, priority: str = "normal", kind: str = "pdf", text: bool = False) -> Task:
    payload = PageTask(doc, doc * 4, index, 10, kind=kind, priority=priority, has_text_layer=text)  # type: ignore[arg-type]
    return Task(next(_seq), "page", payload, PRIORITY_RANKS[priority], 10)


def ingest(doc: str, priority: str = "normal") -> Task:
    document = Document(doc, doc * 4, 1, priority=priority)  # type: ignore[arg-type]
    return Task(next(_seq), "ingest", document, PRIORITY_RANKS[priority], 0)


@dataclass
class FakeWorker:
    slot: int
    in_flight: list[Task] = field(default_factory=list)
    revoking: dict[int, Task] = field(default_factory=dict)
    long_tasks: int = 0
    short_seconds: float = 0.0
    ready: bool = True
    retiring: str = ""
    tasks_done: int = 0


class FakePool:
    depth = 2
    time_bounded = True
    can_revoke = True

    def __init__(self, workers: int, recycle_after: int = 0) -> None:
        self.workers = {slot: FakeWorker(slot) for slot in range(workers)}
        self.held_by_rank = [0] * N_CLASSES
        self.recycle_after = recycle_after
        self.messages: list[tuple[int, list[Task]]] = []

    def free_capacity(self) -> list[FakeWorker]:
        return [w for w in self.workers.values() if len(w.in_flight) < self.depth and self.tasks_before_recycle(w)]

    def tasks_before_recycle(self, worker: FakeWorker) -> int:
        if not self.recycle_after:
            return 1 << 30
        return max(0, self.recycle_after - worker.tasks_done - len(worker.in_flight) - len(worker.revoking))

    def send_batch(self, worker: FakeWorker, tasks: list[Task]) -> None:
        self.messages.append((worker.slot, list(tasks)))
        for task in tasks:
            hold(worker, task, self.held_by_rank)

    def revoke(self, worker: FakeWorker, tasks: list[Task]) -> int:
        for task in tasks:
            release(worker, task, self.held_by_rank)
            worker.revoking[task.seq] = task
        return len(tasks)

    def finish_first(self, worker: FakeWorker) -> Task:
        task = worker.in_flight[0]
        release(worker, task, self.held_by_rank)
        worker.tasks_done += 1
        return task


def make(workers: int = 1, **pool_options) -> tuple[PageQueue, FakePool, Dispatcher, CostBook]:
    queue = PageQueue()
    pool = FakePool(workers, **pool_options)
    costs = CostBook()
    return queue, pool, Dispatcher(queue, pool, BreakerGates(BreakerBoard()), costs), costs


def learn(costs: CostBook, task: Task, seconds: float) -> None:
    for _ in range(KNOWN_AFTER):
        costs.record(task, seconds)


def test_a_worker_holds_one_task_beside_the_one_it_runs_when_costs_are_unknown() -> None:
    queue, pool, dispatcher, _ = make(workers=2)
    for index in range(10):
        queue.push(page("doc", index))
    dispatcher.dispatch()
    assert [len(w.in_flight) for w in pool.workers.values()] == [2, 2]
    dispatcher.dispatch()
    assert len(pool.messages) == 2 and len(queue) == 6  # nothing more until a task finishes
    pool.finish_first(pool.workers[0])
    dispatcher.dispatch()
    assert len(pool.workers[0].in_flight) == 2 and len(queue) == 5


def test_short_tasks_share_the_waiting_place_up_to_the_time_bound() -> None:
    queue, pool, dispatcher, costs = make(workers=1)
    learn(costs, page("t", kind="noop", text=True), 0.001)
    for index in range(100):
        queue.push(page("doc", index, kind="noop", text=True))
    dispatcher.dispatch()
    worker = pool.workers[0]
    assert len(pool.messages) == 1  # one message ...
    held = len(worker.in_flight)
    assert 2 < held <= WAIT_SECONDS / 0.001 + 1  # ... holding about WAIT_SECONDS of work, not a count
    assert worker.short_seconds <= WAIT_SECONDS + 1e-9


def test_slow_pages_after_fast_ones_are_not_batched() -> None:
    queue, pool, dispatcher, costs = make(workers=1)
    learn(costs, page("t", kind="pdf", text=True), 0.001)  # text-layer pages are fast ...
    for index in range(40):
        queue.push(page("scan", index, kind="pdf", text=False))  # ... scanned ones not known yet
    dispatcher.dispatch()
    assert len(pool.workers[0].in_flight) == 2


def test_costs_are_known_per_kind_and_only_after_a_few_results() -> None:
    costs = CostBook()
    fast = page("a", kind="noop", text=True)
    costs.record(fast, 0.001)
    assert costs.expected(fast) == math.inf  # one sample is not enough
    learn(costs, fast, 0.001)
    assert costs.expected(fast) < WAIT_SECONDS
    costs.record(fast, 0.5)  # a slow one of that kind: no longer short
    assert costs.expected(fast) == math.inf
    assert costs.expected(page("b", kind="noop", text=False)) == math.inf
    assert costs.expected(ingest("c")) == math.inf


def test_no_task_beyond_max_pages_per_worker() -> None:
    queue, pool, dispatcher, costs = make(workers=1, recycle_after=3)
    learn(costs, page("t", kind="noop", text=True), 0.001)
    for index in range(10):
        queue.push(page("doc", index, kind="noop", text=True))
    dispatcher.dispatch()
    worker = pool.workers[0]
    assert len(worker.in_flight) == 3
    for _ in range(3):
        pool.finish_first(worker)
        dispatcher.dispatch()
    assert worker.tasks_done == 3 and not worker.in_flight  # the worker is recycled: no fourth task


def test_nothing_waits_behind_an_ingest_that_outranks_it() -> None:
    queue, pool, dispatcher, _ = make(workers=1)
    rush = ingest("rush", "urgent")
    queue.push(rush)
    for index in range(5):
        queue.push(page("bulk", index, "low"))
    dispatcher.dispatch()
    assert pool.workers[0].in_flight == [rush]  # its urgent pages will take the waiting place


def test_an_urgent_task_takes_the_waiting_place_of_a_low_one() -> None:
    queue, pool, dispatcher, _ = make(workers=2)
    for index in range(10):
        queue.push(page("bulk", index, "low"))
    dispatcher.dispatch()
    waiting = {w.slot: w.in_flight[1] for w in pool.workers.values()}
    rush = page("rush", 0, "urgent")
    queue.push(rush)
    dispatcher.dispatch()
    taken = [w for w in pool.workers.values() if w.revoking]
    assert len(taken) == 1  # one urgent page: one waiting place taken back
    worker = taken[0]
    assert list(worker.revoking.values()) == [waiting[worker.slot]]
    assert worker.in_flight[1] is rush and len(queue) == 6
    other = pool.workers[1 - worker.slot]
    assert not other.revoking and other.in_flight[1] is waiting[other.slot]


def test_no_waiting_place_is_taken_when_nothing_better_is_queued() -> None:
    queue, pool, dispatcher, _ = make(workers=2)
    for index in range(10):
        queue.push(page("bulk", index, "normal"))
    dispatcher.dispatch()
    queue.push(page("late", 0, "low"))
    dispatcher.dispatch()
    assert not any(w.revoking for w in pool.workers.values())


def test_a_page_let_through_by_aging_is_not_taken_back_for_better_work() -> None:
    queue, pool, dispatcher, _ = make(workers=1)
    clock = [0.0]
    queue.aging_seconds, queue.clock, queue.aged_share = 10.0, lambda: clock[0], 1
    old = page("old", 0, "low")
    queue.push(old)
    for index in range(4):
        queue.push(page("high", index, "high"))
    dispatcher.dispatch()
    worker = pool.workers[0]
    pool.finish_first(worker)
    clock[0] = 25.0  # old has waited past 2 × aging against the high class
    dispatcher.dispatch()
    assert worker.in_flight[1] is old and old.aged  # it took the waiting place as an aged pick
    queue.push(page("rush", 0, "urgent"))
    dispatcher.dispatch()
    assert not worker.revoking and worker.in_flight[1] is old
