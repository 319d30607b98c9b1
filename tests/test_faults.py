"""Workers that hang or die: the page is retried, then failed as poison; no other page is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAULTS, noop_config

from engine.api import Engine


def run_with_fault(noop_archive, tmp_path: Path, kind: str, **changes):
    archive = noop_archive([3, 3, 2])
    options = {"fault_kind": kind, "fault_match": "doc001.noop page 2"}
    options.update(changes.pop("options", {}))
    config = noop_config(tmp_path / "out", plugins=(FAULTS,), options=options, max_attempts=2,
                         retry_base_delay=0.05, retry_max_delay=0.1, **changes)
    engine = Engine(config)
    results = list(engine.process(archive))
    return results, engine.last_summary


def check_poisoned(results, summary, reason: str) -> None:
    by_page = {(Path(r.document).name, r.page): r for r in results}
    assert len(results) == 8 == len(by_page), "a page was lost or done twice"
    bad = by_page[("doc001.noop", 2)]
    assert bad.status == "failed"
    assert bad.error.type == "PoisonPageError"
    assert reason in bad.error.message
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
