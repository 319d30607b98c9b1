"""The embedding API around jobs and the engine's life: process() beside jobs, leaving the with
block on an error, critical stops, a closed engine, priorities, progress, stored inputs."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import noop_config, noop_folders
from waiting import wait_until

from engine import Engine
from engine.api import stored_inputs
from engine.errors import ConfigError, CriticalError, EngineClosedError
from engine.ledger import LEDGER_NAME, Ledger
from engine.mainguard import GUARD_MESSAGE, _guarded

ROOT = Path(__file__).resolve().parents[1]

CRITICAL_PLUGIN = """
from engine import hookimpl
from engine.errors import CriticalError

@hookimpl
def pagemill_extract(page, ocr, config):
    if page.index == 3:
        raise CriticalError("disk on fire")
    return []
"""


def ledger_of(out: Path) -> Ledger:
    return Ledger(out / LEDGER_NAME)


# ------------------------------------------------------------------ process() beside jobs
@pytest.mark.timeout(60)
def test_process_while_a_job_runs_streams_through_the_jobs_and_every_page_is_done_once(tmp_path) -> None:
    dirs = noop_folders(tmp_path, low=[8, 8, 8, 8], high=[4])
    out = tmp_path / "out"
    with Engine(noop_config(out, noop_ms=10)) as engine:
        low = engine.submit(dirs["low"], priority="low")
        streamed = list(engine.process(dirs["high"], priority="high"))
        assert sorted((Path(r.document).name, r.page) for r in streamed) == [("high0.noop", n) for n in range(1, 5)]
        assert low.result(timeout=60).pages_done == 32 and low.status() == "done"
    lines = (out / "results.jsonl").read_text().splitlines()
    keys = [(json.loads(line)["document"], json.loads(line)["page"]) for line in lines]
    assert len(keys) == 36 and len(set(keys)) == 36


@pytest.mark.timeout(60)
def test_leaving_a_process_loop_beside_jobs_cancels_that_loop_only(tmp_path) -> None:
    dirs = noop_folders(tmp_path, low=[6, 6], high=[100, 100])
    with Engine(noop_config(tmp_path / "out", noop_ms=10)) as engine:
        low = engine.submit(dirs["low"], priority="low")
        for _ in engine.process(dirs["high"], priority="high"):
            break
        assert engine.last_summary.status == "cancelled"
        assert low.result(timeout=60).pages_done == 12 and low.status() == "done"


# ------------------------------------------------------------------ leaving the with block on an error
@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_an_error_in_the_with_block_cancels_the_jobs_and_records_the_run_cancelled(tmp_path, error) -> None:
    dirs = noop_folders(tmp_path, big=[100, 100, 100, 100])
    out = tmp_path / "out"
    engine = Engine(noop_config(out, noop_ms=20))
    with pytest.raises(error):
        with engine:
            job = engine.submit(dirs["big"])
            wait_until(lambda: job.progress().pages_done >= 2)
            raise error()
    assert job.status() == "cancelled" and job.progress().pages_done < 400
    assert engine.last_summary.status == "cancelled"
    with ledger_of(out) as ledger:
        assert ledger.runs()[-1]["status"] == "cancelled"


# ------------------------------------------------------------------ critical stops in jobs
def test_a_critical_stop_fails_the_job_and_the_next_submit_says_why(tmp_path) -> None:
    plugin = tmp_path / "critical_plugin.py"
    plugin.write_text(CRITICAL_PLUGIN)
    dirs = noop_folders(tmp_path, docs=[10, 10, 10])
    with Engine(noop_config(tmp_path / "out", noop_ms=5, plugins=(str(plugin),))) as engine:
        job = engine.submit(dirs["docs"])
        with pytest.raises(CriticalError, match="disk on fire"):
            job.result(timeout=60)
        assert job.status() == "failed" and job.progress().status == "failed"
        with pytest.raises(CriticalError, match="background run stopped.*disk on fire"):
            engine.submit(dirs["docs"])
    assert engine.last_summary.status == "critical"


# ------------------------------------------------------------------ a closed engine
def test_a_closed_engine_refuses_new_work_with_a_clear_error(tmp_path, noop_archive) -> None:
    archive = noop_archive([2])
    engine = Engine(noop_config(tmp_path / "out", sinks=(f"sqlite:///{tmp_path / 'sink.db'}",)))
    with engine:
        assert len(list(engine.process(archive))) == 2
    for use in (lambda: engine.process(archive), lambda: engine.run(archive), lambda: engine.submit(archive)):
        with pytest.raises(EngineClosedError, match="closed"):
            use()
    engine.close()  # a second close does nothing


def test_leaving_the_block_with_a_paused_process_loop_ends_its_run_cancelled(tmp_path, noop_archive, recwarn) -> None:
    archive = noop_archive([30])
    out, sink = tmp_path / "out", tmp_path / "sink.db"
    engine = Engine(noop_config(out, noop_ms=10, sinks=(f"sqlite:///{sink}",)))
    with engine:
        paused = engine.process(archive)
        next(paused)
    assert engine.last_summary.status == "cancelled"
    with ledger_of(out) as ledger:
        assert ledger.runs()[-1]["status"] == "cancelled"
    with pytest.raises(StopIteration):
        next(paused)
    del paused
    gc.collect()
    assert not [w for w in recwarn if "Unraisable" in type(w.message).__name__]


# ------------------------------------------------------------------ priorities
def test_priorities_are_checked_up_front_in_any_case(tmp_path, noop_archive) -> None:
    archive = noop_archive([2])
    with Engine(noop_config(tmp_path / "out")) as engine:
        assert len(list(engine.process(archive, priority="HIGH"))) == 2
        with pytest.raises(ConfigError, match="urgent, high, normal, low"):
            engine.submit(archive, priority="bogus")
        with pytest.raises(ConfigError, match="'rush'"):
            engine.process(archive, priority="rush")
        with pytest.raises(ConfigError, match="'soon'"):
            engine.process({"soon": [archive]})
        assert engine.session is None
        assert engine.run(noop_archive([3], folder="more")).pages_ok == 3  # the engine still works


# ------------------------------------------------------------------ progress and the end of jobs
def test_on_progress_ends_with_the_final_figures_and_a_finished_job_stays_done(tmp_path) -> None:
    dirs = noop_folders(tmp_path, a=[20, 20, 20], b=[7])
    seen = []
    with Engine(noop_config(tmp_path / "out", noop_ms=5), on_progress=seen.append) as engine:
        list(engine.process(dirs["a"]))
        assert (seen[-1].pages_done, seen[-1].pages_known) == (60, 60)
        job = engine.submit(dirs["b"])
        job.result(timeout=60)
        wait_until(lambda: (seen[-1].pages_done, seen[-1].pages_known) == (7, 7))  # the job's last figures, unasked
        job.cancel()
        assert job.status() == "done"


def test_a_jobs_progress_has_its_pages_known_and_whether_documents_are_still_being_found(tmp_path) -> None:
    from plugins.noop import write_noop_document

    dirs = noop_folders(tmp_path, a=[3] * 12, b=[5])
    write_noop_document(dirs["a"] / "empty.noop", 0)  # cannot be opened: one failed record, one page known
    observed = []
    with Engine(noop_config(tmp_path / "out", noop_ms=5)) as engine:
        job = engine.submit(dirs["a"])
        other = engine.submit(dirs["b"], priority="low")
        while not job.finished:
            observed.append(job.progress())
            time.sleep(0.001)
        first, again = job.result(timeout=60), other.result(timeout=60)
        resubmitted = engine.submit(dirs["a"]).result(timeout=60)  # every page done already: skipped
    assert (first.pages_known, first.pages_done, first.pages_failed) == (37, 37, 1)
    assert not first.discovering and first.fraction == 1.0
    assert (again.pages_known, again.pages_done) == (5, 5)  # its own pages only
    assert all(p.pages_done + p.pages_skipped <= p.pages_known for p in observed)
    assert observed[0].discovering and observed[0].fraction is None  # at first its documents are being read
    assert all(p.pages_known == 37 for p in observed if p.status == "running" and not p.discovering)
    assert (resubmitted.pages_known, resubmitted.pages_skipped, resubmitted.pages_done) == (37, 37, 0)
    assert resubmitted.fraction == 1.0


# ------------------------------------------------------------------ inputs stored for resume
def test_inputs_are_stored_as_given_and_read_back_relative_to_where_resume_runs(tmp_path, noop_archive, monkeypatch) -> None:
    noop_archive([2])
    monkeypatch.chdir(tmp_path)
    Engine(noop_config(tmp_path / "out")).run("archive", priority="high")
    with ledger_of(tmp_path / "out") as ledger:
        snapshot = ledger.last_config()
    assert snapshot["inputs"] == {"cwd": str(tmp_path), "inputs": {"high": ["archive"]}}
    assert stored_inputs(snapshot) == {"high": ["archive"]}
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert stored_inputs(snapshot) == {"high": ["../archive"]}
    assert stored_inputs({"inputs": {"normal": ["/data/a", "-"], "low": []}}) == {"normal": ["/data/a", "-"]}
    resumed = Engine(noop_config(tmp_path / "out")).run(stored_inputs(snapshot)["high"])
    assert resumed.pages_skipped == 2


# ------------------------------------------------------------------ scripts without a __main__ guard
def test_a_script_without_a_main_guard_gets_one_clear_line(tmp_path, noop_archive) -> None:
    noop_archive([2])
    script = tmp_path / "job.py"
    script.write_text(
        "from engine import Engine, EngineConfig\n"
        "config = EngineConfig(out_dir='out', workers='1', plugins=('plugins.noop',), load_entry_points=False)\n"
        "with Engine(config) as engine:\n"
        "    print(len(list(engine.process('archive'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert GUARD_MESSAGE in done.stderr and "RuntimeError" not in done.stderr


def test_the_guard_check_reads_the_main_test_either_way_round() -> None:
    import ast

    source = "import x\nrun()\nif __name__ == '__main__':\n    main()\nif '__main__' == __name__:\n    other()\n"
    tree = ast.parse(source)
    assert not _guarded(tree, 2) and _guarded(tree, 4) and _guarded(tree, 6)


def test_the_guard_check_takes_a_main_test_within_a_larger_condition_and_no_other_if() -> None:
    import ast

    source = ("if __name__ == '__main__' and not sys.flags.interactive:\n    main()\n"
              "if DEBUG:\n    run()\nif __name__ in ('__main__',):\n    other()\n")
    tree = ast.parse(source)
    assert _guarded(tree, 2) and not _guarded(tree, 4) and _guarded(tree, 6)
