"""The priority queue: class order, large documents first, aging, urgent work overtaking."""

from __future__ import annotations

import random
from collections import Counter

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


def test_peek_shows_what_pop_returns() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=1.0, clock=clock)
    assert queue.peek() is None
    queue.push(page("low", 0, 1, "low"))
    queue.push(page("normal", 0, 3, "normal"))
    for now in (0.0, 5.0):
        clock.now = now
        if len(queue):
            expected = queue.peek()
            assert queue.pop() is expected


# ----------------------------------------------------------------- a task popped once per push
def test_a_task_pushed_again_is_popped_once_and_strands_no_other() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=30.0, clock=clock)
    small, big = page("small", 0, 1, "low"), page("big", 0, 50, "low")
    queue.push(small)
    queue.push(big)
    assert queue.pop() is big  # sent to a worker ...
    queue.push(big)  # ... that died before starting it: the same task back in the queue
    assert queue.pop() is big
    assert queue.pop() is small
    clock.now = 10.0
    later = page("later", 0, 5, "low")
    queue.push(later)
    high = page("high", 0, 1, "high")
    queue.push(high)
    clock.now = 100.0  # the low class is aged now
    popped = list(queue.drain())
    assert sorted(t.payload.document for t in popped) == ["high", "later"]
    assert len(queue) == 0 and queue.counts() == [0, 0, 0, 0]


def test_every_push_is_popped_exactly_once_against_a_reference_model() -> None:
    """Random pushes, pops, pushes of popped tasks again (retries, tasks given back) and
    removals, checked against a plain multiset of what is waiting."""
    priorities = ("urgent", "high", "normal", "low")
    for seed in range(40):
        rng = random.Random(seed)
        clock = FakeClock()
        queue = PageQueue(aging_seconds=rng.choice([0.5, 3.0, 30.0]), clock=clock, aged_share=rng.choice([1, 2, 4]))
        waiting: Counter[int] = Counter()  # seq -> pushes not yet popped
        by_seq: dict[int, Task] = {}
        popped: list[Task] = []
        pushes = 0
        for _ in range(600):
            clock.now += rng.choice([0.0, 0.1, 1.0, 5.0])
            action = rng.random()
            if action < 0.45:
                task = page(f"d{rng.randrange(30)}", rng.randrange(9), rng.randint(1, 60), rng.choice(priorities))
                by_seq[task.seq] = task
                queue.push(task)
                waiting[task.seq] += 1
                pushes += 1
            elif action < 0.6 and popped:
                task = popped.pop(rng.randrange(len(popped)))
                queue.push(task)  # back, with the same seq
                waiting[task.seq] += 1
                pushes += 1
            elif action < 0.95:
                peeked = queue.peek() if rng.random() < 0.5 else None
                clock.now += rng.choice([0.0, 30.0])  # time passes between a peek and the pop
                task = queue.pop()
                assert peeked is None or task is peeked
                if task is None:
                    assert not +waiting
                    continue
                assert waiting[task.seq] > 0, f"seed {seed}: task {task.seq} popped more often than pushed"
                waiting[task.seq] -= 1
                popped.append(task)
            else:
                doc = f"d{rng.randrange(30)}"
                removed = queue.remove_where(lambda t, doc=doc: t.payload.document == doc)
                for task in removed:
                    assert waiting[task.seq] > 0
                    waiting[task.seq] -= 1
                assert all(by_seq[seq].payload.document != doc for seq, n in waiting.items() if n)
            assert len(queue) == sum(waiting.values())
            assert queue.counts() == [sum(n for seq, n in waiting.items() if by_seq[seq].rank == rank)
                                      for rank in range(4)]
        for task in queue.drain():
            assert waiting[task.seq] > 0
            waiting[task.seq] -= 1
        assert not +waiting, f"seed {seed}: tasks stranded in the queue: {+waiting}"
        assert pushes > 100


# ------------------------------------------------------------------------------- bounded aging
def test_an_aged_backlog_does_not_hold_back_an_urgent_submission() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=30.0, clock=clock)
    for index in range(50):
        queue.push(page("archive", index, 50, "normal"))
    clock.now = 61.0  # the whole backlog is aged against urgent work
    urgent = page("rush", 0, 1, "urgent")
    queue.push(urgent)
    order = [queue.pop() for _ in range(51)]
    assert order.index(urgent) <= 1  # at most one aged task goes first


def test_urgent_pages_get_most_pops_and_aged_ones_a_bounded_share() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=10.0, clock=clock)
    lows = [page("low", index, 40, "low") for index in range(40)]
    for task in lows:
        queue.push(task)
    clock.now = 100.0  # every low page is aged
    served = []
    for step in range(40):  # one urgent page arrives per pop: urgent work never runs out
        queue.push(page(f"u{step}", 0, 1, "urgent"))
        served.append(queue.pop())
        clock.now += 1.0
    low_pops = [index for index, task in enumerate(served) if task.payload.document == "low"]
    assert 8 <= len(low_pops) <= 10  # one pop in four, no more and not starved
    assert all(b - a >= 4 for a, b in zip(low_pops, low_pops[1:]))  # never two aged pops close together


def test_a_low_page_waits_a_bounded_time_behind_urgent_pages_arriving_faster_than_served() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=5.0, clock=clock)
    low = page("low", 0, 1, "low")
    queue.push(low)
    served_at = None
    for step in range(300):  # three urgent pages arrive per page served
        for part in "abc":
            queue.push(page(f"u{step}{part}", 0, 1, "urgent"))
        if queue.pop() is low:
            served_at = clock.now
            break
        clock.now += 1.0
    assert served_at is not None, "the low page starved"
    assert served_at <= 3 * 5.0 + 4  # three classes below urgent, then within one share of pops


# --------------------------------------------------------------------- a task keeps its age
def test_a_task_given_back_keeps_its_age_and_is_not_sent_behind_fresher_pages() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=10.0, clock=clock)
    old = page("old", 0, 1, "low")
    queue.push(old)
    clock.now = 5.0
    assert queue.pop() is old  # sent to a worker ...
    clock.now = 6.0
    fresh = page("fresh", 0, 1, "low")
    queue.push(fresh)
    queue.push(old)  # ... which gave it back unstarted: its wait still counts from 0
    assert old.enqueued_at == 0.0
    assert queue.pop() is old  # oldest first among the aged: the fresher page does not overtake
    queue.push(page("high", 0, 1, "high"))
    clock.now = 21.0  # old has waited 21 s: past 2 × aging against the high class; fresh only 15 s
    queue.push(old)
    assert queue.pop() is old


def test_a_retried_task_keeps_its_first_enqueue_time() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=10.0, clock=clock)
    low = page("low", 0, 1, "low")
    queue.push(low)
    clock.now = 1.0
    assert queue.pop() is low
    clock.now = 30.0  # failed, waited out its backoff, due again
    queue.push(low)
    queue.push(page("urgent", 0, 1, "urgent"))
    assert low.enqueued_at == 0.0
    assert queue.pop() is low  # three classes below urgent, 30 s old: aged at once, not waiting again


def test_an_aged_pick_that_comes_back_gets_its_pop_at_once() -> None:
    clock = FakeClock()
    queue = PageQueue(aging_seconds=10.0, clock=clock)
    low = page("low", 0, 1, "low")
    queue.push(low)
    for index in range(20):
        queue.push(page("high", index, 20, "high"))
    clock.now = 25.0
    assert queue.pop() is low and low.aged  # aged: it goes before the high pages
    queue.push(low)  # its worker was retired (its spare place given back) before it started
    assert queue.pop() is low  # not put behind aged_share - 1 more high pages
    assert queue.pop().payload.document == "high"
    assert not queue.peek().aged
