"""How a run ends: pages handed on exactly once across runs, crashes, a full disk while writing the
outputs, the status of the whole output folder, killed runs, and one run at a time per folder."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAULTS, noop_config

from engine import hookimpl
from engine.api import Engine
from engine.discovery import sha256_of
from engine.errors import PluginError
from engine.ledger import Ledger, open_existing
from engine.outlock import OutputFolderBusy, OutputLock
from engine.records import PageResult
from engine.sinks import OUTPUT_NAMES, _Pending
from plugins.noop import write_noop_document

ROOT = Path(__file__).resolve().parents[1]
SIXTY = [12, 9, 15, 6, 10, 8]


def pagemill(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def run_statuses(out: Path) -> list[str]:
    with open_existing(out, read_only=True) as ledger:
        return [run["status"] for run in ledger.runs()]


class Collector:
    """pagemill_page_done in the parent, like a sink."""

    name = "collector"

    def __init__(self, fail_at: int | None = None) -> None:
        self.keys: list[tuple[str, int]] = []
        self.fail_at = fail_at

    @hookimpl
    def pagemill_page_done(self, result: PageResult) -> None:
        if self.fail_at is not None and len(self.keys) == self.fail_at:
            raise RuntimeError("the sink's database is gone")
        self.keys.append(result.key)


# ------------------------------------------------------------------- delivery exactly once
def test_leaving_after_one_page_then_rerunning_hands_on_every_page_exactly_once(noop_archive, tmp_path) -> None:
    archive = noop_archive(SIXTY)
    out = tmp_path / "out"
    yielded, called, hooks = [], [], Collector()
    for result in Engine(noop_config(out), plugins=[hooks], on_page_done=lambda r: called.append(r.key)).process(archive):
        yielded.append(result.key)
        break
    assert len(yielded) == 1 and called == yielded == hooks.keys
    with open_existing(out, read_only=True) as ledger:
        assert ledger.counts()["pages"] == 1  # what was committed but not handed on was taken back
    again = Collector()
    for result in Engine(noop_config(out), plugins=[again], on_page_done=lambda r: called.append(r.key)).process(archive):
        yielded.append(result.key)
    assert len(yielded) == len(set(yielded)) == 60
    assert called == yielded and hooks.keys + again.keys == yielded


def test_a_callback_that_raises_ends_the_run_as_crashed_and_the_rerun_hands_on_the_rest(noop_archive, tmp_path) -> None:
    archive = noop_archive(SIXTY)
    out = tmp_path / "out"
    delivered: list[tuple[str, int]] = []

    def load(result: PageResult) -> None:
        if len(delivered) == 5:
            raise ConnectionError("the warehouse is down")
        delivered.append(result.key)

    with Engine(noop_config(out, noop_ms=2), on_page_done=load) as engine:
        with pytest.raises(ConnectionError):
            engine.run(archive)
        crashed = engine.last_summary
        assert crashed.status == "crashed" and crashed.exit_code == 3 and "warehouse" in crashed.message
        assert run_statuses(out) == ["crashed"]
        engine.on_page_done = lambda result: delivered.append(result.key)
        rest = engine.run(archive)  # the same engine and pool: nothing of the crashed run comes back
    assert rest.status == "finished" and rest.pages_skipped == 5
    assert len(delivered) == len(set(delivered)) == 60
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len({(r["sha256"], r["page"]) for r in lines}) == len(lines) == 60


def test_a_sink_hook_that_raises_is_a_crash_that_keeps_what_was_handed_on(noop_archive, tmp_path) -> None:
    archive = noop_archive([10, 10])
    out = tmp_path / "out"
    sink = Collector(fail_at=3)
    with pytest.raises(PluginError, match="plugin collector: pagemill_page_done raised RuntimeError: .*database is gone"):
        Engine(noop_config(out), plugins=[sink]).run(archive)
    assert run_statuses(out) == ["crashed"]
    with open_existing(out, read_only=True) as ledger:
        assert ledger.counts()["pages"] == 3
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "crashed" and report["pages"] == 3 and report["exit_code"] == 3


# -------------------------------------------------------------------------------- full disk
def test_a_full_disk_while_writing_the_outputs_is_a_critical_stop_that_keeps_every_page(
        noop_archive, tmp_path, monkeypatch) -> None:
    archive = noop_archive([3, 2])
    out = tmp_path / "out"
    Engine(noop_config(out)).run(archive)
    before = {name: (out / name).read_bytes() for name in OUTPUT_NAMES}
    write_noop_document(archive / "doc002.noop", 2)
    real = _Pending.finish

    def full(self: _Pending) -> None:
        if self.path.name == "results.csv":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self)

    monkeypatch.setattr(_Pending, "finish", full)
    summary = Engine(noop_config(out)).run(archive)
    assert summary.status == "critical" and summary.exit_code == 3
    assert "No space left on device" in summary.message and str(out) in summary.message
    assert "\n" not in summary.message
    assert {name: (out / name).read_bytes() for name in OUTPUT_NAMES} == before  # the old set, whole
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert run_statuses(out) == ["finished", "critical"]
    with open_existing(out, read_only=True) as ledger:
        assert ledger.counts()["pages"] == 7


# --------------------------------------------------------------- the state of the whole folder
def test_a_run_with_nothing_left_to_do_reports_the_failed_page_its_folder_holds(noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 2])
    out = tmp_path / "out"
    config = noop_config(out, plugins=(FAULTS,), options={"fault_kind": "permanent", "fault_match": "doc000.noop page 2"})
    first = Engine(config).run(archive)
    assert first.status == "partial" and first.exit_code == 1
    again = Engine(config).run(archive)
    assert again.pages_ok + again.pages_review + again.pages_failed == 0 and again.pages_skipped == 5
    assert again.outputs_failed == 1 and again.pages_done_before == 5
    assert again.status == "partial" and again.exit_code == 1
    report = json.loads((out / "report.json").read_text())
    assert (report["status"], report["failed"], report["exit_code"]) == ("partial", 1, 1)


# ------------------------------------------------------------------------------- killed runs
def _killed_run(out: Path, archive: Path, pages: int) -> None:
    """What a run killed with kill -9 leaves: committed pages, and its row still says running."""
    out.mkdir()
    sha = sha256_of(archive / "doc000.noop")
    ledger = Ledger(out / "ledger.sqlite")
    run = ledger.start_run({})
    ledger.record_document(sha, str(archive / "doc000.noop"), 1, 4, "ingested")
    for index in range(pages):
        ledger.add_result(run, PageResult(str(archive / "doc000.noop"), sha, index + 1, 4, "ok"))
    ledger.close()


def test_a_killed_run_shows_its_pages_and_becomes_interrupted_at_the_next_run(noop_archive, tmp_path) -> None:
    archive = noop_archive([4, 2])
    out = tmp_path / "out"
    _killed_run(out, archive, 3)
    listed = pagemill("runs", str(out))
    assert listed.returncode == 0, listed.stderr
    # no process holds the folder: shown as interrupted, while the ledger is left as it is
    assert listed.stdout.splitlines()[1].split("\t")[3:5] == ["interrupted (process gone)", "3"]
    assert run_statuses(out) == ["running"]
    summary = Engine(noop_config(out)).run(archive)
    assert summary.pages_skipped == 3 and summary.status == "finished"
    with open_existing(out, read_only=True) as ledger:
        runs = ledger.runs()
    assert [(run["status"], run["pages"]["pages"]) for run in runs] == [("interrupted", 3), ("finished", 3)]


# ------------------------------------------------------------------------ one run per folder
def test_a_second_run_into_a_folder_in_use_is_refused_before_any_work(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    out = tmp_path / "out"
    Engine(noop_config(out)).run(archive)
    write_noop_document(archive / "doc001.noop", 3)
    lock = OutputLock(out).acquire()  # a run in progress
    try:
        with pytest.raises(OutputFolderBusy) as caught:
            Engine(noop_config(out)).run(archive)
        message = str(caught.value)
        assert str(out) in message and f"pid {os.getpid()}" in message and "\n" not in message
        assert run_statuses(out) == ["finished"]  # nothing recorded, nothing marked
        refused = pagemill("run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--no-progress")
        assert refused.returncode == 3 and f"pid {os.getpid()}" in refused.stderr
        assert "Traceback" not in refused.stderr
        for command in (["status", str(out)], ["runs", str(out)], ["export", str(out), "--format", "csv"]):
            done = pagemill(*command)
            assert done.returncode == 0, (command, done.stderr)
    finally:
        lock.release()
    after = Engine(noop_config(out)).run(archive)  # released: the folder takes the next run
    assert after.pages_ok + after.pages_review == 3
    assert run_statuses(out) == ["finished", "finished"]


def test_the_lock_goes_with_a_process_killed_with_kill_9(tmp_path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from engine.outlock import OutputLock; "
         "held = OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputFolderBusy, match=f"pid {holder.pid}"):
            OutputLock(tmp_path).acquire()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
    OutputLock(tmp_path).acquire().release()


def test_the_ledger_of_a_finished_run_is_closed_and_the_folder_free(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    out = tmp_path / "out"
    Engine(noop_config(out)).run(archive)
    OutputLock(out).acquire().release()
    with sqlite3.connect(out / "ledger.sqlite") as db:
        assert db.execute("select status from runs").fetchone() == ("finished",)
