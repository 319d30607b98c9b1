"""The Python API for ETL jobs: streaming, early exit, jobs sharing a pool by priority."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import noop_config

from engine import Engine, Field, Issue, PageResult, hookimpl
from plugins.noop import write_noop_document

ROOT = Path(__file__).resolve().parents[1]


class SlowSameTicket:
    """Every page carries ticket 555 and takes a while, so the first is handed on before the second
    finds the duplicate and amends it."""

    name = "slow_same_ticket"

    @hookimpl
    def pagemill_extract(self, page, ocr, config):
        import time

        time.sleep(0.5)
        return [Field("ticket_number", "555", 0.99, raw="555")]

    @hookimpl
    def pagemill_cross_check(self, result, seen, config):
        seen.first_seen("ticket_number", "555", result.where(), result.key)
        places = seen.places("ticket_number", "555")
        if len(places) < 2:
            return []
        for place in places:
            if place.key != result.key:
                seen.amend(place.key, Issue("duplicate_ticket", f"555 also on {result.where()}", field="ticket_number"))
        return [Issue("duplicate_ticket", f"555 also on {places[0].where}", field="ticket_number")]


class Collector:
    """A parent-side plugin: pagemill_page_done runs in the parent, like a sink."""

    name = "collector"

    def __init__(self) -> None:
        self.pages: list[str] = []

    @hookimpl
    def pagemill_page_done(self, result):
        self.pages.append(f"{Path(result.document).name}:{result.page}")


def test_process_streams_results_and_callbacks_and_hooks_agree(noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 4])
    collector = Collector()
    called: list[PageResult] = []
    with Engine(noop_config(tmp_path / "out", noop_ms=1), plugins=[collector], on_page_done=called.append) as engine:
        streamed = list(engine.process(archive, priority="high"))
        again = list(engine.process(archive))  # the same pool, a second call: all done already
    assert len(streamed) == 7 and again == []
    assert [f"{Path(r.document).name}:{r.page}" for r in streamed] == collector.pages
    assert called == streamed
    assert engine.last_summary.pages_skipped == 7


def test_leaving_the_loop_early_cancels_cleanly_and_a_rerun_finishes(noop_archive, tmp_path) -> None:
    archive = noop_archive([30])
    out = tmp_path / "out"
    engine = Engine(noop_config(out, noop_ms=30))
    taken = []
    for result in engine.process(archive):
        taken.append(result)
        if len(taken) == 3:
            break
    assert engine.last_summary.status == "cancelled"
    committed = engine.last_summary.pages_ok + engine.last_summary.pages_review
    assert 3 <= committed < 30
    rest = Engine(noop_config(out, noop_ms=1)).run(archive)
    assert rest.pages_skipped == committed
    assert rest.pages_ok + rest.pages_review == 30 - committed


def test_two_jobs_share_the_pool_and_the_high_one_finishes_first(tmp_path) -> None:
    low_dir, high_dir = tmp_path / "low", tmp_path / "high"
    low_dir.mkdir()
    high_dir.mkdir()
    for n in range(4):
        write_noop_document(low_dir / f"low{n}.noop", 8)
    write_noop_document(high_dir / "rush.noop", 4)
    with Engine(noop_config(tmp_path / "out", noop_ms=40, workers="1")) as engine:
        low = engine.submit(low_dir, priority="low", keep_results=True)
        high = engine.submit(high_dir, priority="high", keep_results=True)
        assert high.result(timeout=60).pages_done == 4
        assert low.status() == "running"
        assert low.result(timeout=120).pages_done == 32
        assert low.status() == "done" and high.progress().status == "done"
    assert engine.last_summary.pages_ok + engine.last_summary.pages_review == 36
    assert (tmp_path / "out" / "results.jsonl").read_text().count("\n") == 36


def test_a_cancelled_job_stops_and_the_other_goes_on(tmp_path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for n in range(5):
        write_noop_document(first / f"a{n}.noop", 10)
    write_noop_document(second / "b.noop", 5)
    with Engine(noop_config(tmp_path / "out", noop_ms=30, workers="1")) as engine:
        doomed = engine.submit(first, priority="normal")
        kept = engine.submit(second, priority="low")
        doomed.cancel()
        assert doomed.result(timeout=60).pages_done < 50
        assert doomed.status() == "cancelled"
        assert kept.result(timeout=60).pages_done == 5


def test_the_example_etl_job_runs(tmp_path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "etl_job.py"), "--pages", "3", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "loaded 3 tickets" in done.stdout
    assert (tmp_path / "tickets.csv").read_text().count("\n") == 4


def test_the_readme_example_plugin_adds_a_field_an_issue_and_an_option(tmp_path) -> None:
    from engine.config import EngineConfig
    from engine.records import OcrResult, PageTask
    from engine.registry import PluginRegistry

    path = ROOT / "examples" / "overweight_plugin.py"
    assert path.read_text() and "overweight_plugin.py" in (ROOT / "README.md").read_text()
    registry = PluginRegistry.for_run([str(path)], load_entry_points=False)
    page = PageTask("t.pdf", "0" * 64, 0, 1)
    ocr = OcrResult("Gross: 90,000 lb\nWeighmaster: Ana Ruiz", mean_confidence=90.0)
    fields = [f for group in registry.hook.pagemill_extract(page=page, ocr=ocr, config=EngineConfig()) for f in group]
    assert [(f.name, f.value) for f in fields] == [("operator", "Ana Ruiz")]
    from engine.records import Field

    heavy = {"gross_lb": Field("gross_lb", 90000, 0.9)}
    issues = registry.hook.pagemill_validate(page=page, fields=heavy, config=EngineConfig(options={"max_gross": 85000}))
    assert [i.code for group in issues for i in group] == ["overweight"]
    done = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--help", "--plugin", str(path)],
                          capture_output=True, text=True, timeout=60, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert "--max-gross" in done.stdout


def test_the_example_etl_job_makes_its_folder_and_a_rerun_restores_a_lost_ticket(tmp_path) -> None:
    import sqlite3

    work = tmp_path / "new" / "work"  # not there yet

    def etl(*extra: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, str(ROOT / "examples" / "etl_job.py"), *extra, "--work", str(work)],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done

    first = etl("--pages", "3")
    assert "loaded 3 tickets this run" in first.stdout
    with sqlite3.connect(work / "tickets.db") as db:  # as if killed between the ledger's commit and the table's
        db.execute("DELETE FROM tickets WHERE page = 2")
    again = etl(str(work / "sample" / "scans"))
    assert "loaded 0 tickets this run (1 recovered from the ledger)" in again.stdout
    with sqlite3.connect(work / "tickets.db") as db:
        rows = db.execute("SELECT sha256, page FROM tickets ORDER BY page").fetchall()
    assert [page for _, page in rows] == [1, 2, 3] and len(set(rows)) == 3
    assert (work / "tickets.csv").read_text().count("\n") == 4


def test_an_engine_built_from_the_environment_reads_its_plugins_options_there_too(monkeypatch, tmp_path) -> None:
    plugin = ROOT / "examples" / "overweight_plugin.py"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAGEMILL_PLUGINS", str(plugin))
    monkeypatch.setenv("PAGEMILL_MAX_GROSS", "1234.5")
    engine = Engine(out_dir=str(tmp_path / "out"))
    assert engine.config.options["max_gross"] == 1234.5  # read with the option's own type
    engine.close()


def _outputs(out: Path) -> dict[tuple[str, int], tuple[str, list[str]]]:
    import json

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(r["sha256"], r["page"]): (r["status"], sorted(i["code"] for i in r["issues"])) for r in records}


def test_a_page_amended_after_it_was_handed_on_reaches_on_page_amended(noop_archive, tmp_path) -> None:
    archive = noop_archive([1, 1])
    out = tmp_path / "out"
    seen: dict[tuple[str, int], tuple[str, list[str]]] = {}
    amended: list[PageResult] = []

    def keep(result: PageResult) -> None:
        seen[(result.sha256, result.page)] = (result.status, sorted(i.code for i in result.issues))

    def on_amended(result: PageResult) -> None:
        amended.append(result)
        keep(result)

    with Engine(noop_config(out, workers="1"), plugins=[SlowSameTicket()], on_page_amended=on_amended) as engine:
        for result in engine.process(archive):
            keep(result)
    assert len(amended) == 1 and amended[0].status == "review"
    assert seen == _outputs(out)


@pytest.mark.slow
def test_the_example_etl_job_upserts_amended_tickets_so_its_table_matches_the_outputs(tmp_path, tesseract_available) -> None:
    import sqlite3

    work = tmp_path / "work"
    sample = subprocess.run([sys.executable, "-m", "engine.cli", "sample", str(tmp_path / "sample"), "--pages", "16",
                             "--no-broken"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert sample.returncode == 0, sample.stderr
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "etl_job.py"), str(tmp_path / "sample" / "scans"),
                           "--work", str(work)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    outputs = {key: status for key, (status, _) in _outputs(work / "pagemill-out").items()}
    with sqlite3.connect(work / "tickets.db") as db:
        table = {(sha, page): status for sha, page, status in db.execute("SELECT sha256, page, status FROM tickets")}
    assert len(table) == 16 and table == outputs
    truth = [line for line in (tmp_path / "sample" / "truth.jsonl").read_text().splitlines() if "duplicate_of" in line]
    assert truth  # the sample repeats a ticket number: its first page is amended after it was handed on


def test_an_explicit_config_gets_the_defaults_of_the_plugins_options(tmp_path) -> None:
    from engine.config import EngineConfig

    plugin = tmp_path / "leveled.py"
    plugin.write_text("from engine import hookimpl\n\n@hookimpl\ndef pagemill_add_options(parser):\n"
                      "    parser.add_argument('--qa-level', type=int, default=5)\n")
    engine = Engine(EngineConfig(out_dir=str(tmp_path / "out"), load_entry_points=False), plugins=[str(plugin)])
    assert engine.config.options["qa_level"] == 5
    given = Engine(EngineConfig(load_entry_points=False, options={"qa_level": 1}), plugins=[str(plugin)])
    assert given.config.options["qa_level"] == 1
    engine.close()
    given.close()


def test_plugin_authors_get_the_types_they_are_handed() -> None:
    import engine
    from engine.seen import Place, SeenValues

    assert engine.SeenValues is SeenValues and engine.Place is Place
    assert (ROOT / "engine" / "py.typed").is_file() and (ROOT / "plugins" / "py.typed").is_file()


HOST_SCRIPT = """
import multiprocessing, multiprocessing.forkserver, sys
from pathlib import Path
from engine import Engine, EngineConfig

if __name__ == "__main__":
    multiprocessing.set_forkserver_preload(["json"])
    with Engine(EngineConfig(out_dir=sys.argv[2], workers="1", plugins=("plugins.noop",), load_entry_points=False)) as e:
        e.run([sys.argv[1]])
    print("method", multiprocessing.get_start_method(allow_none=True))
    print("preload", multiprocessing.forkserver._forkserver._preload_modules)
    multiprocessing.set_start_method("spawn")
    print("set ok")
"""


def test_a_run_leaves_the_hosts_multiprocessing_settings_as_they_were(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    script = tmp_path / "host.py"
    script.write_text(HOST_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(archive), str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "method None" and lines[-1] == "set ok"
    assert lines[1].startswith("preload ['json', ") and "engine" in lines[1]


STARTING: list[Engine] = []


class CancelsWhileStarting:
    """Cancels its engine from the run's preflight: before the run's session exists."""

    name = "cancels_while_starting"

    @hookimpl
    def pagemill_preflight(self, config):
        STARTING[-1].cancel()


def test_a_cancel_while_the_run_starts_ends_it_at_once_as_cancelled(noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 3])
    engine = Engine(noop_config(tmp_path / "out"), plugins=[CancelsWhileStarting()])
    STARTING.append(engine)
    try:
        results = list(engine.process(archive))
    finally:
        STARTING.clear()
    assert results == []
    assert engine.last_summary.status == "cancelled" and engine.last_summary.exit_code == 130
    again = Engine(noop_config(tmp_path / "out"))  # resumable: nothing was lost, nothing is left pending
    assert len(list(again.process(archive))) == 6 and again.last_summary.status == "finished"


PUBLIC_NAMES = ("Engine", "EngineConfig", "Job", "JobProgress", "RunProgress", "StageRate", "PagemillError",
                "ConfigError", "CriticalError", "LedgerError", "EngineClosedError", "PluginError", "PluginLoadError")


def test_the_public_api_is_importable_from_engine_and_stays_lazy() -> None:
    import engine
    from engine.errors import ConfigError, CriticalError
    from engine.jobs import Job, JobProgress
    from engine.run_progress import RunProgress

    assert (engine.Job, engine.JobProgress, engine.RunProgress) == (Job, JobProgress, RunProgress)
    assert (engine.ConfigError, engine.CriticalError) == (ConfigError, CriticalError)
    assert set(PUBLIC_NAMES) <= set(engine.__all__) and set(PUBLIC_NAMES) <= set(dir(engine))
    code = ("import sys, engine\nlight = 'engine.api' not in sys.modules and 'engine.jobs' not in sys.modules\n"
            f"from engine import {', '.join(PUBLIC_NAMES)}\nprint(light)\n")
    done = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(ROOT), "PATH": ""}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # a plugin importing engine.hookimpl loads no engine machinery
    with pytest.raises(AttributeError, match="no_such_name"):
        engine.no_such_name  # noqa: B018


def test_a_submitted_job_returns_a_job_of_the_public_api(noop_archive, tmp_path) -> None:
    import engine

    with Engine(noop_config(tmp_path / "out")) as eng:
        job = eng.submit(noop_archive([2]))
        assert isinstance(job, engine.Job)
        assert isinstance(job.result(timeout=60), engine.JobProgress)


def test_on_progress_snapshots_carry_pages_per_second_and_stage_rates(noop_archive, tmp_path) -> None:
    archive = noop_archive([6, 6, 6])
    updates = []
    summary = Engine(noop_config(tmp_path / "out", noop_ms=25), on_progress=updates.append).run(archive)
    assert summary.pages_ok == 18
    last = updates[-1]
    assert last.pages_done == 18 and last.pages_per_second is not None and last.pages_per_second > 0
    assert last.fraction == 1.0 and last.eta_seconds is None  # nothing left
    assert {"load", "extract", "validate"} <= {rate.stage for rate in last.stages}
    assert all(rate.calls_per_second is None or rate.calls_per_second >= 0 for rate in last.stages)
    assert all(update.eta_seconds is None for update in updates if update.discovering)
