"""The scheduler in real runs: counters, scaling with a fake probe, urgent work overtaking."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
from conftest import FAULTS, noop_config
from faults import read_trace
from loguru import logger
from rich.console import Console

from engine.api import Engine
from engine.discovery import iter_documents
from engine.progress import ProgressDisplay
from engine.scaling import FakeProbe
from plugins.noop import write_noop_document


def test_counters_sum_to_the_results_every_page_counted_once(noop_archive, tmp_path) -> None:
    archive = noop_archive([5, 7, 3, 9])
    seen = []
    engine = Engine(noop_config(tmp_path / "out", noop_ms=2), on_progress=seen.append)
    results = list(engine.process(archive))
    assert len(results) == 24
    assert engine._pool is None  # the pool it started for this call is closed
    summary = engine.last_summary
    assert summary.pages_ok + summary.pages_review == 24
    assert seen, "no progress reported"
    final = seen[-1]
    assert final.counters.pages_done + final.counters.pages_errored <= 24


def test_counters_are_exact_after_the_run(noop_archive, tmp_path) -> None:
    archive = noop_archive([4, 6])
    with Engine(noop_config(tmp_path / "out", noop_ms=1)) as engine:
        results = list(engine.process(archive))
        snapshot = engine._pool.board.snapshot()
    assert snapshot.pages_started == snapshot.pages_done == len(results) == 10
    assert snapshot.pages_errored == 0
    assert snapshot.stage_calls["load"] == 10 and snapshot.stage_calls["ingest"] == 2
    assert snapshot.stage_busy_seconds["load"] >= 10 * 0.001
    assert snapshot.in_hand == 0


def test_display_without_a_terminal_logs_progress_lines() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO")
    try:
        display = ProgressDisplay(total_pages=10, console=Console(file=io.StringIO(), force_terminal=False), log_every=0)
        from engine.progress import ProgressSnapshot

        stages = {s: 1 for s in ("ingest", "load", "ocr", "extract", "validate")}
        snap = ProgressSnapshot(3, 3, 0, 1, stages, {s: 0 for s in stages}, {s: 0.5 for s in stages}, 0.0)
        display.start()
        display.update(snap, done_pages=3, workers_busy=1, workers_target=2, memory_mb=120)
        display.stop()
    finally:
        logger.remove(sink)
    assert any("3/10 pages" in line and "workers 1/2" in line for line in lines), lines


def test_scaling_up_with_backlog_and_down_under_memory_pressure(noop_archive, tmp_path) -> None:
    archive = noop_archive([30, 30])
    # plenty of memory for the first seconds, then pressure
    probe = FakeProbe([(10.0, 8000.0)] * 2 + [(10.0, 100.0)] * 100)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    try:
        config = noop_config(tmp_path / "out", noop_ms=80, workers="1:2", min_free_memory_mb=512)
        engine = Engine(config, probe=probe)
        results = list(engine.process(archive))
    finally:
        logger.remove(sink)
    assert len(results) == 60
    assert engine.last_summary.peak_workers == 2
    assert any("workers 1 → 2" in line and "backlog" in line for line in lines), lines
    assert any("workers 2 → 1" in line and "memory pressure" in line for line in lines), lines


def test_urgent_submission_overtakes_a_queued_archive(tmp_path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    for number in range(4):
        write_noop_document(archive / f"bulk{number}.noop", 10)
    urgent_dir = tmp_path / "urgent"
    urgent_dir.mkdir()
    write_noop_document(urgent_dir / "rush.noop", 2)
    order: list[str] = []
    engine = Engine(noop_config(tmp_path / "out", noop_ms=40, workers="1"))
    submitted = False
    for result in engine.process(archive, priority="low"):
        order.append(Path(result.document).name)
        if len(order) == 3 and not submitted:
            engine.session.scheduler.add_documents(iter_documents([str(urgent_dir)], "urgent"), "urgent")
            submitted = True
    assert order.count("rush.noop") == 2
    first_rush = order.index("rush.noop")
    # it starts within about one page-time: at most the pages already sent to the worker and
    # the ledger's batch come before it
    assert first_rush <= 3 + 8, order
    assert len(order) == 42


def test_workers_are_recycled_after_max_pages_without_losing_a_page(noop_archive, tmp_path) -> None:
    archive = noop_archive([6, 6, 6])
    with Engine(noop_config(tmp_path / "out", noop_ms=2, max_pages_per_worker=4)) as engine:
        results = list(engine.process(archive))
        started = engine._pool.workers_started
    assert len(results) == 18 and len({(r.document, r.page) for r in results}) == 18
    # 21 tasks (3 ingests + 18 pages), 4 per worker life: at least 6 worker lives
    assert started >= 6


def test_workers_are_recycled_past_the_rss_limit(noop_archive, tmp_path) -> None:
    archive = noop_archive([20, 20])
    with Engine(noop_config(tmp_path / "out", noop_ms=120, max_worker_rss_mb=1)) as engine:
        results = list(engine.process(archive))
        started = engine._pool.workers_started
    assert len(results) == 40
    assert started > 2  # every worker is over 1 MB: each is replaced after its tasks


def test_each_run_of_an_engine_reports_its_own_counters(noop_archive, tmp_path) -> None:
    archive = noop_archive([4, 6])
    with Engine(noop_config(tmp_path / "out", noop_ms=1, fresh=True)) as engine:
        busy = []
        for _ in range(2):
            results = []
            for result in engine.process(archive):
                results.append(result)
                scheduler = engine.session.scheduler
            counters = scheduler.run_counters()
            assert len(results) == 10
            assert counters.pages_started == counters.pages_done == 10
            assert counters.stage_calls["load"] == 10 and counters.stage_calls["ingest"] == 2
            assert counters.stage_busy_seconds["load"] >= 0.010
            busy.append(counters.stage_busy_seconds["load"])
            assert 1 <= scheduler.peak_workers <= 2
        assert sum(busy) == pytest.approx(engine._pool.board.snapshot().stage_busy_seconds["load"])
        assert engine._pool.board.snapshot().pages_done == 20  # the board itself counts for the pool's life


def test_no_worker_runs_more_than_max_pages_and_a_recycled_one_is_replaced_at_once(noop_archive, tmp_path) -> None:
    archive = noop_archive([6, 6, 6])
    trace = tmp_path / "trace"
    config = noop_config(tmp_path / "out", plugins=(FAULTS,), options={"trace_file": str(trace)}, noop_ms=1,
                         max_pages_per_worker=4)
    short_handed = []
    with Engine(config) as engine:
        pool = engine._pool
        original = pool.wait

        def wait(timeout):
            if pool.workers and len(pool.live) < pool.target:
                short_handed.append((len(pool.live), pool.target))
            return original(timeout)

        pool.wait = wait
        results = list(engine.process(archive))
    assert len(results) == 18 and len({(r.document, r.page) for r in results}) == 18
    tasks_per_worker = Counter(pid for pid, _, _ in read_trace(trace))
    assert sum(tasks_per_worker.values()) == 21  # 3 ingests and 18 pages
    assert max(tasks_per_worker.values()) <= 4, tasks_per_worker
    assert short_handed == []  # the pool never waited short of its target


def test_a_memory_limit_below_a_fresh_worker_recycles_each_worker_after_a_task(noop_archive, tmp_path) -> None:
    archive = noop_archive([4])
    trace = tmp_path / "trace"
    config = noop_config(tmp_path / "out", plugins=(FAULTS,), options={"trace_file": str(trace)}, noop_ms=300,
                         workers="1", max_worker_rss_mb=1)
    with Engine(config) as engine:
        results = list(engine.process(archive))
        started = engine._pool.workers_started
    assert len(results) == 4
    lives_with_work = len({pid for pid, _, _ in read_trace(trace)})
    assert started - lives_with_work <= 1  # only the last replacement may be left without a task


def test_a_second_run_of_an_engine_knows_the_plugin_calls_of_workers_left_from_the_first(noop_archive, tmp_path) -> None:
    archive = noop_archive([3])
    with Engine(noop_config(tmp_path / "out", workers="1")) as engine:
        engine.run(str(archive))
        precise = []
        for _ in engine.process(str(noop_archive([2], folder="more"))):
            precise.append(engine.session.scheduler.gates.precise)
    assert precise and all(precise)  # its breakers gate single calls, as in the first run
