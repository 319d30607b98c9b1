"""Better work takes the waiting place; cancelling takes back what has not started.

The worker's pages wait at a gate file (tests/faults.py) so that what each worker holds is known
when the test acts; the trace file shows the order in which tasks started.
"""

from __future__ import annotations

import threading
from pathlib import Path

from conftest import FAULTS, noop_config
from faults import read_trace
from waiting import wait_until

from engine.api import Engine
from engine.discovery import iter_documents
from plugins.noop import write_noop_document


def folder(root: Path, name: str, pages: list[int]) -> Path:
    path = root / name
    path.mkdir()
    for number, count in enumerate(pages):
        write_noop_document(path / f"{name}{number}.noop", count)
    return path


def started(trace: Path) -> list[str]:
    return [what for _, what, _ in read_trace(trace)]


def test_an_urgent_document_starts_right_after_the_page_in_hand(tmp_path) -> None:
    bulk = folder(tmp_path, "bulk", [4, 4, 4])
    rush = folder(tmp_path, "rush", [3])
    trace, gate = tmp_path / "trace", tmp_path / "gate"
    options = {"trace_file": str(trace), "page_gate": str(gate)}
    engine = Engine(noop_config(tmp_path / "out", plugins=(FAULTS,), options=options, workers="1", noop_ms=10))
    mark: list[int] = []

    def submit_while_busy() -> None:
        wait_until(lambda: any(" page " in what for what in started(trace)), what="a page in hand")
        scheduler = wait_until(lambda: engine.session and engine.session.scheduler)
        pool = scheduler.pool
        wait_until(lambda: any(len(w.in_flight) == 2 for w in list(pool.workers.values())), what="a page waiting")
        mark.append(len(started(trace)))
        scheduler.add_documents(iter_documents([str(rush)], "urgent"), "urgent")
        wait_until(lambda: any(w.revoking for w in list(pool.workers.values())), what="the waiting page asked back")
        gate.touch()

    helper = threading.Thread(target=submit_while_busy)
    helper.start()
    rush_done = 0
    for result in engine.process(bulk, priority="low"):
        rush_done += "rush" in result.document
        if rush_done == 3:
            break
    helper.join()
    after = started(trace)[mark[0]:]
    assert after[0].endswith("rush0.noop ingest"), after
    assert all("rush" in what for what in after[:4]), after  # its ingest, then its three pages
    assert sum("rush" in what for what in after) == 4


def test_cancel_takes_back_the_waiting_pages(noop_archive, tmp_path) -> None:
    archive = noop_archive([5, 5])
    trace, gate = tmp_path / "trace", tmp_path / "gate"
    options = {"trace_file": str(trace), "page_gate": str(gate)}
    engine = Engine(noop_config(tmp_path / "out", plugins=(FAULTS,), options=options, workers="1"))
    mark: list[int] = []

    def cancel_while_busy() -> None:
        wait_until(lambda: any(" page " in what for what in started(trace)), what="a page in hand")
        pool = wait_until(lambda: engine.session and engine.session.scheduler.pool)
        wait_until(lambda: any(len(w.in_flight) == 2 for w in list(pool.workers.values())), what="a page waiting")
        engine.cancel()
        wait_until(lambda: any(w.revoking for w in list(pool.workers.values())), what="the waiting page asked back")
        mark.append(len(started(trace)))
        gate.touch()

    helper = threading.Thread(target=cancel_while_busy)
    helper.start()
    results = list(engine.process(archive))
    helper.join()
    assert started(trace)[mark[0]:] == []  # the page in hand finished; the waiting one never started
    assert len(results) == 1
    assert engine.last_summary.status == "cancelled"


def test_a_cancelled_job_drops_the_pages_of_an_ingest_in_flight(tmp_path) -> None:
    archive = folder(tmp_path, "doomed", [10])
    trace, gate = tmp_path / "trace", tmp_path / "gate"
    options = {"trace_file": str(trace), "ingest_gate": str(gate)}
    with Engine(noop_config(tmp_path / "out", plugins=(FAULTS,), options=options, workers="1")) as engine:
        job = engine.submit(archive)
        wait_until(lambda: any(what.endswith("ingest") for what in started(trace)), what="the ingest in hand")
        job.cancel()
        wait_until(lambda: job.id in engine.session.scheduler.dropped_jobs, what="the job dropped")
        gate.touch()
        assert job.result(timeout=30).pages_done == 0
        assert job.status() == "cancelled"
    assert not any(" page " in what for what in started(trace))


def test_a_small_low_input_beside_a_large_high_one_is_read_and_aged_before_the_high_one_is_done(
        tmp_path, monkeypatch) -> None:
    import functools

    import engine.api
    from engine.scheduler import Scheduler

    monkeypatch.setattr(engine.api, "Scheduler", functools.partial(Scheduler, aging_seconds=0.0))  # aged at once
    high = folder(tmp_path, "high", [4] * 30)
    low = folder(tmp_path, "low", [2])
    engine = Engine(noop_config(tmp_path / "out", workers="1"))
    order = [Path(result.document).parent.name for result in engine.process({"high": [high], "low": [low]})]
    assert order.count("high") == 120 and order.count("low") == 2
    last_low = max(index for index, name in enumerate(order) if name == "low")
    assert last_low < 60, order  # served while most of the high input still waits, not after it


def test_the_pages_of_a_large_document_found_last_in_a_folder_go_first(tmp_path) -> None:
    archive = folder(tmp_path, "archive", [1] * 20)
    big = write_noop_document(archive / "zbig.noop", 20)
    with big.open("a", encoding="utf-8") as handle:
        handle.write("padding: " + "x" * 400 + "\n")  # its bytes say it is the largest, as a PDF's would
    engine = Engine(noop_config(tmp_path / "out", workers="1"))
    order = [Path(result.document).name for result in engine.process(archive)]
    assert len(order) == 40
    last_big = max(index for index, name in enumerate(order) if name == "zbig.noop")
    assert last_big < 30, order  # not the tail of the run
