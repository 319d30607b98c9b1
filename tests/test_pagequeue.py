"""The priority queue: class order, large documents first, aging, urgent work overtaking."""

from __future__ import annotations

from engine.pagequeue import PageQueue, RetryTimers, Task
from engine.records import PRIORITY_RANKS, PageTask


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


_seq = iter(range(1, 10**9))


def page(doc: str, index: int, pages: int, priority: str = "normal") -> Task:
    task = PageTask(doc, doc * 8, index, pages, priority=priority)  # type: ignore[arg-type]
    return Task(next(_seq), "page", task, PRIORITY_RANKS[priority], pages)


def test_classes_in_priority_order() -> None:
    queue = PageQueue(clock=FakeClock())
    for priority in ("low", "normal", "urgent", "high"):
        queue.push(page(priority, 0, 1, priority))
    order = [task.payload.priority for task in queue.drain()]
    assert order == ["urgent", "high", "normal", "low"]


def test_larger_documents_first_then_page_order() -> None:
    queue = PageQueue(clock=FakeClock())
    for index in range(2):
        queue.push(page("small", index, 2))
    for index in range(5):
        queue.push(page("big", index, 5))
    for index in range(3):
        queue.push(page("mid", index, 3))
    order = [(t.payload.document, t.payload.index) for t in queue.drain()]
    assert [d for d, _ in order] == ["big"] * 5 + ["mid"] * 3 + ["small"] * 2
    assert [i for d, i in order if d == "big"] == [0, 1, 2, 3, 4]


def test_ingest_tasks_go_before_pages_of_their_class() -> None:
    queue = PageQueue(clock=FakeClock())
    queue.push(page("big", 0, 50))
    ingest = Task(next(_seq), "ingest", object(), PRIORITY_RANKS["normal"], 0)
    queue.push(ingest)
    assert queue.pop() is ingest


def test_low_page_is_served_within_a_bounded_wait_while_high_pages_keep_arriving() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=10.0, clock=clock)
    low = page("low", 0, 1, "low")
    queue.push(low)
    served_at = None
    for step in range(200):  # one page-time is 1 s; two high pages arrive per page served
        queue.push(page(f"h{step}a", 0, 1, "high"))
        queue.push(page(f"h{step}b", 0, 1, "high"))
        task = queue.pop()
        if task is low:
            served_at = clock.now
            break
        clock.now += 1.0
    assert served_at is not None, "the low page starved"
    # low is two classes below high: it wins once it has waited 2 aging periods, plus one step
    assert served_at <= 2 * 10.0 + 1.0


def test_without_waiting_no_aging() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=10.0, clock=clock)
    queue.push(page("low", 0, 1, "low"))
    queue.push(page("high", 0, 1, "high"))
    clock.now = 5.0
    assert queue.pop().payload.document == "high"


def test_urgent_submission_overtakes_a_queued_archive() -> None:
    clock = FakeClock()
    queue = PageQueue(clock=clock)
    for index in range(100):
        queue.push(page("archive", index, 100))
    taken = [queue.pop() for _ in range(3)]
    urgent = page("urgent", 0, 1, "urgent")
    queue.push(urgent)
    assert queue.pop() is urgent
    assert all(t.payload.document == "archive" for t in taken)
    assert len(queue) == 97


def test_len_and_counts_stay_right_after_aging_pops() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=1.0, clock=clock)
    queue.push(page("low", 0, 1, "low"))
    queue.push(page("normal", 0, 4, "normal"))
    clock.now = 5.0
    first = queue.pop()
    assert first.payload.document == "low"
    assert len(queue) == 1
    assert queue.pop().payload.document == "normal"
    assert queue.pop() is None
    assert len(queue) == 0


def test_retry_timers_release_tasks_when_due() -> None:
    timers = RetryTimers()
    a, b = page("a", 0, 1), page("b", 0, 1)
    timers.add(a, 5.0)
    timers.add(b, 2.0)
    assert timers.next_time() == 2.0
    assert timers.due(1.0) == []
    assert timers.due(2.0) == [b]
    assert timers.due(10.0) == [a]
    assert len(timers) == 0
