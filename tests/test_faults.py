"""Workers that hang or die: the page is retried, then failed as poison; no other page is lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import FAULTS, noop_config
from loguru import logger

from engine.api import Engine
from engine.pool import WorkerPool

FLAKY = str(Path(__file__).parent / "flaky.py")


def run_with_fault(noop_archive, tmp_path: Path, kind: str, **changes):
    archive = noop_archive([3, 3, 2])
    options = {"fault_kind": kind, "fault_match": "doc001.noop page 2"}
    options.update(changes.pop("options", {}))
    config = noop_config(tmp_path / "out", plugins=(FAULTS,), options=options, max_attempts=2,
                         retry_base_delay=0.05, retry_max_delay=0.1, **changes)
    engine = Engine(config)
    results = list(engine.process(archive))
    return results, engine.last_summary


def process_keeping_scheduler(config, archive: Path):
    """Every result of one process() call, the run's counters read before the engine closes,
    its scheduler and the engine."""
    with Engine(config) as engine:
        results = []
        for result in engine.process(archive):
            results.append(result)
            scheduler = engine.session.scheduler
        counters = scheduler.run_counters()
    return results, counters, scheduler, engine


def check_poisoned(results, summary, reason: str) -> None:
    by_page = {(Path(r.document).name, r.page): r for r in results}
    assert len(results) == 8 == len(by_page), "a page was lost or done twice"
    bad = by_page[("doc001.noop", 2)]
    assert bad.status == "failed"
    assert bad.error.type == "PoisonPageError"
    assert reason in bad.error.message
    assert "(pagemill_extract) on each of 2 attempts" in bad.error.message  # the hook that hung or died
    assert bad.error.stage == "extract"
    assert bad.attempts == 2
    others = [r for key, r in by_page.items() if key != ("doc001.noop", 2)]
    assert all(r.status in ("ok", "review") for r in others)
    assert summary.pages_failed == 1 and summary.exit_code == 1


@pytest.mark.slow
def test_hanging_plugin_is_timed_out_retried_and_failed_as_poison(noop_archive, tmp_path) -> None:
    results, summary = run_with_fault(noop_archive, tmp_path, "hang", page_timeout=1.0)
    check_poisoned(results, summary, "past 1 s")


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, reason",
    [("exit", "exited with code 3"), ("segv", "SIGSEGV"), ("sigkill", "SIGKILL")],
)
def test_dying_worker_is_replaced_and_page_failed_as_poison(noop_archive, tmp_path, kind, reason) -> None:
    results, summary = run_with_fault(noop_archive, tmp_path, kind)
    check_poisoned(results, summary, reason)


def test_transient_failure_is_retried_and_succeeds(noop_archive, tmp_path) -> None:
    options = {"fault_limit": 1, "fault_state": str(tmp_path / "fired")}
    results, summary = run_with_fault(noop_archive, tmp_path, "transient", options=options)
    assert len(results) == 8
    assert all(r.status != "failed" for r in results)
    retried = [r for r in results if r.attempts == 2]
    assert [(Path(r.document).name, r.page) for r in retried] == [("doc001.noop", 2)]
    assert (tmp_path / "fired").stat().st_size == 1


def test_permanent_failure_is_recorded_once(noop_archive, tmp_path) -> None:
    results, summary = run_with_fault(noop_archive, tmp_path, "permanent")
    failed = [r for r in results if r.status == "failed"]
    assert len(failed) == 1 and failed[0].attempts == 1
    assert failed[0].error.error_class == "permanent"
    assert "scripted permanent failure" in failed[0].error.message
    assert failed[0].error.stage == "extract"


def test_critical_failure_stops_the_run_and_keeps_finished_pages(noop_archive, tmp_path) -> None:
    results, summary = run_with_fault(noop_archive, tmp_path, "critical")
    assert summary.status == "critical" and summary.exit_code == 3
    assert "scripted critical failure" in summary.message
    assert all(r.status != "failed" for r in results)
    assert len({(r.document, r.page) for r in results}) == len(results)


# ------------------------------------------------------------------ a worker lost at a send
def test_a_worker_that_dies_just_before_a_send_is_handled_as_a_death(noop_archive, tmp_path, monkeypatch) -> None:
    archive = noop_archive([6, 6, 6])
    original = WorkerPool.send_batch
    sends = []

    def dies_first(pool, worker, tasks):
        sends.append(len(tasks))
        if len(sends) == 6:  # the worker dies between the wait and this send
            worker.process.kill()
            worker.process.join(5)

            def broken(message):
                raise BrokenPipeError(32, "Broken pipe")

            worker.conn.send = broken
        original(pool, worker, tasks)

    monkeypatch.setattr(WorkerPool, "send_batch", dies_first)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message}")
    try:
        engine = Engine(noop_config(tmp_path / "out", noop_ms=5))
        results = list(engine.process(archive))
    finally:
        logger.remove(sink)
    assert len(sends) > 6
    assert any("cannot be written to" in line for line in lines), lines
    assert any("died" in line for line in lines)
    assert len(results) == 18 == len({(r.document, r.page) for r in results})
    assert all(r.status != "failed" for r in results)
    assert engine.last_summary.status == "finished"


# ---------------------------------------------------------------- counters equal the results
def test_counters_match_the_results_after_a_crash_a_retry_and_a_poison_page(noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 3, 2])
    (archive / "svc.flaky").write_text("pages: 2\n")
    options = {"fault_kind": "exit", "fault_match": "doc001.noop page 2", "flaky_failures": 1,
               "flaky_state": str(tmp_path / "flaky")}
    config = noop_config(tmp_path / "out", plugins=(FAULTS, FLAKY), options=options, max_attempts=2,
                         retry_base_delay=0.05, retry_max_delay=0.1)
    results, counters, _, _ = process_keeping_scheduler(config, archive)
    assert len(results) == 10 == len({(r.document, r.page) for r in results})
    finished = [r for r in results if r.status != "failed"]
    failed = [r for r in results if r.status == "failed"]
    assert [r.error.type for r in failed] == ["PoisonPageError"]
    errored_attempts = sum(r.attempts - 1 for r in finished) + sum(r.attempts for r in failed)
    assert errored_attempts == 3  # the poison page twice, the flaky page once
    assert counters.pages_done == len(finished)
    assert counters.pages_errored == errored_attempts
    assert counters.pages_killed == 2
    assert counters.pages_started == counters.pages_done + counters.pages_errored
    with sqlite3.connect(tmp_path / "out" / "ledger.sqlite") as db:
        rows = db.execute("SELECT COUNT(*) FROM attempts WHERE error_class IS NOT NULL AND page_index >= 0").fetchone()
    assert rows[0] == errored_attempts  # each errored attempt is one attempt row with an error


def test_a_crash_among_short_batched_pages_loses_no_finished_page_and_counts_none_twice(noop_archive, tmp_path) -> None:
    archive = noop_archive([40, 40])
    options = {"fault_kind": "exit", "fault_match": "doc001.noop page 30"}
    config = noop_config(tmp_path / "out", plugins=(FAULTS,), options=options, max_attempts=2, noop_ms=1,
                         retry_base_delay=0.01, retry_max_delay=0.02)
    results, counters, _, _ = process_keeping_scheduler(config, archive)
    assert len(results) == 80 == len({(r.document, r.page) for r in results})
    finished = [r for r in results if r.status != "failed"]
    assert len(finished) == 79
    assert all(r.attempts == 1 for r in finished)  # the pages that were waiting were not charged
    assert counters.pages_done == 79 and counters.pages_errored == counters.pages_killed == 2


# -------------------------------------------------------------- deaths feed the plugin's breaker
@pytest.mark.parametrize("kind", ["exit", pytest.param("hang", marks=pytest.mark.slow)])
def test_a_plugin_that_crashes_or_hangs_opens_its_breaker_and_every_page_ends(noop_archive, tmp_path, kind) -> None:
    archive = noop_archive([3, 3, 2])
    options = {"fault_kind": kind, "fault_match": "doc001.noop page 2"}
    config = noop_config(tmp_path / "out", plugins=(FAULTS,), options=options, max_attempts=2, page_timeout=1.0,
                         retry_base_delay=0.05, retry_max_delay=0.1, breaker_threshold=1, breaker_reset_seconds=0.2)
    results, _, scheduler, engine = process_keeping_scheduler(config, archive)
    check_poisoned(results, engine.last_summary, "past 1 s" if kind == "hang" else "exited with code 3")
    assert scheduler.breaker_counts()["faults.pagemill_extract"]["opened"] >= 1
