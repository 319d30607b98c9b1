"""A process() loop beside jobs: each page reaches a loop once across runs, however the loop ends;
a slow loop holds a few pages at most; close() from another thread; the loop's summary."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from conftest import noop_config, noop_folders
from waiting import wait_until

from engine import Engine
from engine.handover import HANDOVER_PAGES
from engine.ledger import LEDGER_NAME


def committed(out: Path, folder: str) -> set[tuple[str, int]]:
    """The page keys of ``folder``'s documents the ledger holds, read as another process would."""
    db = sqlite3.connect(f"file:{out / LEDGER_NAME}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT document, sha256, page_index FROM pages").fetchall()
    finally:
        db.close()
    return {(sha, index) for document, sha, index in rows if f"/{folder}/" in document}


def rest_of(out: Path, archive: Path) -> list[tuple[str, int]]:
    with Engine(noop_config(out, noop_ms=0)) as engine:
        return [page.key for page in engine.process(archive)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ending", ["break", "error", "ctrl-c"])
def test_a_loop_beside_jobs_that_ends_early_loses_no_page_and_gets_none_twice(tmp_path, ending) -> None:
    dirs = noop_folders(tmp_path, low=[20], high=[10, 10, 10])
    out = tmp_path / "out"
    delivered: list[tuple[str, int]] = []
    error = {"break": None, "error": ValueError, "ctrl-c": KeyboardInterrupt}[ending]
    engine = Engine(noop_config(out, noop_ms=5))
    try:
        with engine:
            engine.submit(dirs["low"], priority="low")
            for page in engine.process(dirs["high"], priority="high"):
                delivered.append(page.key)
                if len(delivered) == 3:  # more pages are committed than the loop has taken
                    wait_until(lambda: len(committed(out, "high")) >= len(delivered) + 3)
                    if error is not None:
                        raise error()
                    break
    except (ValueError, KeyboardInterrupt):
        assert error is not None
    assert committed(out, "high") == set(delivered)  # the pages it did not take were taken back
    later = rest_of(out, dirs["high"])
    assert not set(later) & set(delivered)
    assert len(later) + len(delivered) == 30 and len(set(later)) == len(later)


@pytest.mark.timeout(60)
def test_a_slow_loop_beside_jobs_holds_a_few_pages_at_most(tmp_path) -> None:
    dirs = noop_folders(tmp_path, low=[4], high=[60, 60])
    most = 0
    with Engine(noop_config(tmp_path / "out", noop_ms=0)) as engine:
        engine.submit(dirs["low"], priority="low")
        count = 0
        for _ in engine.process(dirs["high"], priority="high"):
            count += 1
            most = max(most, *(len(handover) for handover in engine._jobs.handovers))
            time.sleep(0.005)
        peak = max(handover.peak for handover in engine._jobs.handovers)
    assert count == 120
    assert most <= HANDOVER_PAGES and peak <= HANDOVER_PAGES


@pytest.mark.timeout(60)
def test_a_loop_that_waits_for_a_job_inside_it_does_not_hold_the_run_up(tmp_path) -> None:
    dirs = noop_folders(tmp_path, low=[40], high=[40])
    with Engine(noop_config(tmp_path / "out", noop_ms=0)) as engine:
        low = engine.submit(dirs["low"], priority="low")
        taken = 0
        for _ in engine.process(dirs["high"], priority="high"):
            taken += 1
            if taken == 1:
                assert low.result(timeout=30).pages_done == 40  # the run goes on while this loop waits
    assert taken == 40


@pytest.mark.timeout(60)
def test_the_summary_of_a_loop_beside_jobs_counts_its_skipped_pages_documents_and_outputs(tmp_path) -> None:
    dirs = noop_folders(tmp_path, low=[6], old=[3, 4], new=[2, 2])
    out = tmp_path / "out"
    with Engine(noop_config(out)) as engine:
        assert engine.run(dirs["old"]).pages_total == 7
        job = engine.submit(dirs["low"], priority="low")
        assert list(engine.process(dirs["old"])) == []
        summary = engine.last_summary
        assert (summary.pages_skipped, summary.pages_total, summary.documents) == (7, 7, 0)
        job.result(timeout=30)
        assert len(list(engine.process(dirs["new"]))) == 4
        summary = engine.last_summary
        assert (summary.pages_skipped, summary.documents, summary.status) == (0, 2, "finished")
        assert summary.outputs_ok + summary.outputs_review == 6 + 7 + 4
        assert summary.pages_done_before == 13
        assert list(engine.process(dirs["new"])) == []  # done in this very run: skipped, not redone
        assert engine.last_summary.pages_skipped == 4


@pytest.mark.timeout(60)
@pytest.mark.parametrize("beside_jobs", [False, True])
def test_close_from_another_thread_ends_the_running_loop_cleanly(tmp_path, noop_archive, beside_jobs) -> None:
    archive = noop_archive([200])
    out = tmp_path / "out"
    engine = Engine(noop_config(out, noop_ms=10))
    engine.start()
    if beside_jobs:
        engine.submit(noop_archive([3], folder="low"), priority="low")
    got: list[object] = []
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            for page in engine.process(archive):
                got.append(page.key)
        except BaseException as exc:  # noqa: BLE001 - what the test looks at
            errors.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    wait_until(lambda: len(got) >= 3)
    engine.close()
    assert not thread.is_alive()  # close() waited for the loop
    thread.join()
    assert errors == [] and 3 <= len(got) < 200
    assert engine.last_summary.status == ("finished" if beside_jobs else "cancelled")  # the jobs' run ran to its end
    db = sqlite3.connect(f"file:{out / LEDGER_NAME}?mode=ro", uri=True)
    statuses = [row[0] for row in db.execute("SELECT status FROM runs")]
    db.close()
    assert "crashed" not in statuses
    assert committed(out, "archive") == set(got)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("beside_jobs", [False, True])
def test_the_page_whose_callback_raised_is_taken_back_and_delivered_by_the_next_run(tmp_path, noop_archive,
                                                                                  beside_jobs) -> None:
    archive = noop_archive([8])
    out = tmp_path / "out"
    seen: list[tuple[str, int]] = []

    def callback(result) -> None:
        seen.append(result.key)
        if len(seen) == 3:
            raise RuntimeError("the table is locked")

    with pytest.raises(RuntimeError, match="table is locked"):
        with Engine(noop_config(out, workers="1"), on_page_done=callback) as engine:
            if beside_jobs:
                engine.submit(archive).result(timeout=30)
            else:
                engine.run(archive)
    assert committed(out, "archive") == set(seen[:2])  # the third one raised: not handed on
    later = rest_of(out, archive)
    assert seen[2] in later and len(later) == 6 and not set(later) & set(seen[:2])


def test_close_from_a_callback_of_the_running_loop_is_refused_with_a_clear_error(tmp_path, noop_archive) -> None:
    from engine.errors import PagemillError

    archive = noop_archive([4])
    engine: Engine | None = None

    def callback(result) -> None:
        assert engine is not None
        engine.close()  # would wait for the loop it runs in

    engine = Engine(noop_config(tmp_path / "out"), on_page_done=callback)
    with pytest.raises(PagemillError, match=r"close\(\) called from a callback of a running run"):
        engine.run(archive)
    assert not engine.closed
    engine.close()
    assert engine.closed
