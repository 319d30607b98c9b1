"""The API's progress snapshot: made on the run's thread, read from any thread; the display's
rates (pages/s, ETA, per-stage throughput) in it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
from conftest import noop_config

from engine import Engine, RunProgress
from engine.progress import ProgressSnapshot
from engine.rates import RateWindow
from engine.records import STAGES
from engine.run_progress import PUBLISH_EVERY, ProgressPublisher


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counters(calls: dict[str, int], busy: dict[str, float], running: dict[str, int] | None = None) -> ProgressSnapshot:
    zeros = dict.fromkeys(STAGES, 0)
    return ProgressSnapshot(0, 0, 0, 0, {**zeros, **calls}, dict(zeros), {**dict.fromkeys(STAGES, 0.0), **busy}, 0.0,
                            {**zeros, **(running or {})})


@dataclass
class StubPool:
    target: int = 3
    busy: int = 2

    def busy_count(self) -> int:
        return self.busy


@dataclass
class StubScheduler:
    pool: StubPool = field(default_factory=StubPool)
    pages_known: int = 20
    pages_skipped: int = 0
    worker_rss_mb: dict = field(default_factory=lambda: {1: 100.0, 2: 120.0})
    reading: ProgressSnapshot = field(default_factory=lambda: counters({}, {}))

    def run_counters(self) -> ProgressSnapshot:
        return self.reading


@dataclass
class StubSession:
    scheduler: StubScheduler = field(default_factory=StubScheduler)
    pages_done: int = 0
    discovering: bool = False


def test_the_snapshot_carries_the_displays_rates_eta_and_stages() -> None:
    clock = Clock()
    publisher = ProgressPublisher(clock=clock)
    session = StubSession()
    first = publisher.tick(session)
    assert first is not None and first.pages_per_second is None and first.eta_seconds is None  # no span yet
    for second, done in ((1, 4), (2, 8)):
        clock.now = 1000.0 + second
        session.pages_done = done
        session.scheduler.reading = counters({"load": done, "ocr": done}, {"load": 0.1 * done, "ocr": 0.3 * done},
                                             running={"ocr": 2})
        progress = publisher.tick(session)
    assert progress is not None and progress is publisher.latest(session)
    assert progress.pages_per_second == pytest.approx(4.0)
    assert progress.eta_seconds == pytest.approx(3.0)  # 12 pages left at 4 pages/s
    assert progress.fraction == pytest.approx(0.4)
    stages = {rate.stage: rate for rate in progress.stages}
    assert set(stages) == {"load", "ocr"}  # the stages that ran
    assert stages["ocr"].calls_per_second == pytest.approx(4.0) and stages["ocr"].busy_share == pytest.approx(0.75)
    assert stages["ocr"].running == 2
    assert (progress.workers_busy, progress.workers_target, progress.workers_memory_mb) == (2, 3, 220.0)


def test_no_eta_or_fraction_while_documents_are_still_being_found() -> None:
    clock = Clock()
    publisher = ProgressPublisher(clock=clock)
    session = StubSession(discovering=True)
    publisher.tick(session)
    clock.now += 1
    session.pages_done = 5
    progress = publisher.tick(session)
    assert progress is not None and progress.pages_per_second == pytest.approx(5.0)
    assert progress.eta_seconds is None and progress.fraction is None


def test_snapshots_are_made_at_most_every_publish_interval_unless_forced() -> None:
    clock = Clock()
    publisher = ProgressPublisher(clock=clock)
    session = StubSession()
    assert publisher.tick(session) is not None
    clock.now += PUBLISH_EVERY / 2
    assert publisher.tick(session) is None
    assert publisher.tick(session, force=True) is not None
    assert publisher.latest(StubSession()) is None  # another run's snapshot is not this one's


def test_skipped_pages_of_a_resume_are_not_counted_as_speed() -> None:
    clock = Clock()
    publisher = ProgressPublisher(clock=clock)
    session = StubSession()
    publisher.tick(session)
    clock.now += 2
    session.scheduler.pages_skipped = 10  # found done before, all at once
    session.pages_done = 2
    progress = publisher.tick(session)
    assert progress is not None and progress.pages_done == 12
    assert progress.pages_per_second == pytest.approx(1.0)
    assert progress.eta_seconds == pytest.approx(8.0)


def test_the_window_forgets_readings_older_than_it() -> None:
    window = RateWindow(window=10.0)
    window.add(0.0, 0, counters({}, {}))
    window.add(5.0, 100, counters({}, {}))  # a fast start
    for second in range(6, 30):
        rates = window.add(float(second), 100 + (second - 5), counters({}, {}))
    assert rates.pages_per_second == pytest.approx(1.0, abs=0.11)  # the last 10 s only


def test_progress_from_another_thread_never_reads_what_the_run_changes(noop_archive, tmp_path) -> None:
    archive = noop_archive([4] * 4)
    config = noop_config(tmp_path / "out", max_pages_per_worker=1)  # a new worker for every page
    seen: list[RunProgress] = []
    errors: list[BaseException] = []
    foreign: list[str] = []
    stop = threading.Event()

    def hammer(engine: Engine) -> None:
        while not stop.is_set():
            try:
                progress = engine.progress()
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
                return
            if progress is not None:
                seen.append(progress)
            time.sleep(0)  # lets the run's thread have the interpreter too

    with Engine(config) as engine:
        engine.start()
        pool = engine._pool
        for name in ("busy_count", "in_flight_count"):  # what a snapshot reads of the pool
            method = getattr(pool, name)

            def watched(*args, _method=method, **kwargs):
                if threading.current_thread().name != "pagemill-jobs":
                    foreign.append(threading.current_thread().name)
                return _method(*args, **kwargs)

            setattr(pool, name, watched)
        thread = threading.Thread(target=hammer, args=(engine,), name="hammer")
        thread.start()
        try:
            job = engine.submit(archive)
            assert job.result(timeout=60).pages_done == 16
        finally:
            stop.set()
            thread.join()
    assert errors == []
    assert "hammer" not in foreign and "MainThread" not in foreign  # only the run's thread reads the pool
    assert seen and all(isinstance(progress, RunProgress) for progress in seen)
    done = [progress.pages_done for progress in seen]
    assert done == sorted(done)  # snapshots in order: never an older one after a newer
    assert max(done) >= 1
