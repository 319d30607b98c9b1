"""The figures of a run add up: this run's work against the output folder's contents, in the
summary, in report.json and in the end-of-run table; a cancel that comes once every page is done
changes nothing; the progress says when documents are still being found."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from conftest import noop_config
from rich.console import Console

from engine.api import Engine
from engine.progress import ProgressDisplay, ProgressSnapshot
from engine.records import STAGES, RunSummary
from plugins.noop import write_noop_document


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot_of(done: int) -> ProgressSnapshot:
    zeros = dict.fromkeys(STAGES, 0)
    return ProgressSnapshot(done, done, 0, 0, dict(zeros), dict(zeros), dict.fromkeys(STAGES, 0.0), 0.0, dict(zeros))


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def table_text(summary: RunSummary) -> str:
    out = io.StringIO()
    Console(file=out, width=120).print(ProgressDisplay(enabled=False).render_summary(summary))
    return out.getvalue()


def row(text: str, label: str, last: bool = False) -> str:
    """The value of the table's first (or last) row named ``label``."""
    rows = [line.strip()[1:-1].split("│") for line in text.splitlines() if line.startswith("│")]
    values = [value.strip() for name, value in rows if name.strip() == label.strip()]
    return values[-1 if last else 0]


def assert_consistent(summary: RunSummary, report: dict) -> None:
    """Every pair of figures that must agree, agrees."""
    processed = summary.pages_ok + summary.pages_review + summary.pages_failed
    assert summary.pages_total == processed + summary.pages_skipped
    assert sum(summary.errors_by_class.values()) == summary.pages_failed
    assert report["pages"] == report["ok"] + report["review"] + report["failed"]
    assert (report["ok"], report["review"], report["failed"]) == (
        summary.outputs_ok, summary.outputs_review, summary.outputs_failed)
    assert sum(report["outputs_errors_by_class"].values()) == report["failed"]
    assert report["errors_by_class"] == summary.errors_by_class
    assert report["pages_total"] == summary.pages_total and report["pages_skipped"] == summary.pages_skipped


def test_a_renamed_file_a_changed_file_and_a_copy_are_counted_once_each(noop_archive, tmp_path) -> None:
    archive = noop_archive([2, 1, 2])
    out = tmp_path / "out"
    Engine(noop_config(out)).run(archive)
    (archive / "doc001.noop").rename(archive / "renamed.noop")  # not redone
    write_noop_document(archive / "doc000.noop", 1)  # changed: redone, its two old pages leave the outputs
    shutil.copy(archive / "doc002.noop", archive / "a-copy-of-doc002.noop")  # the same content: done once
    summary = Engine(noop_config(out)).run(archive)
    report = json.loads((out / "report.json").read_text())
    assert len(records(out)) == report["pages"] == 4
    assert summary.pages_ok + summary.pages_review == 1
    assert summary.pages_skipped == 3 and summary.pages_total == 4  # the copy's pages are not counted again
    assert summary.pages_done_before == 3 and report["pages_done_before"] == 3
    assert_consistent(summary, report)


def test_a_rerun_over_a_document_that_failed_whole_counts_it_and_says_why_the_run_is_partial(
        noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 2])
    (archive / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really")
    out = tmp_path / "out"
    config = noop_config(out, load_entry_points=True)
    first = Engine(config).run(archive)
    assert first.status == "partial" and first.pages_failed == 1 and first.pages_total == 6
    again = Engine(config).run(archive)
    report = json.loads((out / "report.json").read_text())
    assert again.status == "partial" and again.exit_code == 1 and again.pages_failed == 0
    assert again.pages_skipped == again.pages_total == report["pages"] == 6  # the failed document is one page
    assert again.errors_by_class == {} and report["outputs_errors_by_class"] == {"permanent": 1}
    assert_consistent(again, report)
    text = table_text(again)
    assert row(text, "in the outputs") == "6" and row(text, "  failed", last=True) == "1 (from an earlier run)"


def test_the_table_shows_the_folder_only_when_it_holds_more_than_this_runs_pages() -> None:
    base = dict(run_id=3, out_dir="/tmp/out", status="finished", pages_total=5, pages_ok=4, pages_review=1,
                pages_failed=0, pages_skipped=0, documents=2, wall_seconds=2.0, pages_per_second=2.5)
    same = RunSummary(**base, outputs_ok=4, outputs_review=1, outputs_failed=0)
    assert "in the outputs" not in table_text(same)
    more = RunSummary(**{**base, "status": "partial", "pages_failed": 1, "pages_ok": 3},
                      outputs_ok=40, outputs_review=1, outputs_failed=3, errors_by_class={"permanent": 1})
    text = table_text(more)
    assert row(text, "in the outputs") == "44" and row(text, "  ok", last=True) == "40"
    assert row(text, "  failed") == "1" and row(text, "  failed", last=True) == "3 (2 from an earlier run)"


def test_a_cancel_after_the_last_page_was_processed_leaves_a_finished_run(noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 3])
    out = tmp_path / "out"
    seen: list[int] = []
    engine: Engine | None = None

    def on_page_done(result) -> None:
        seen.append(result.page)
        if len(seen) == 6:  # Ctrl-C while the last page is handed on
            assert engine is not None
            engine.cancel()

    engine = Engine(noop_config(out), on_page_done=on_page_done)
    summary = engine.run(archive)
    assert len(records(out)) == 6
    assert summary.status == "finished" and summary.exit_code == 0
    assert json.loads((out / "report.json").read_text())["status"] == "finished"


def test_a_cancel_with_pages_left_is_still_a_cancel(noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 3, 3, 3])
    out = tmp_path / "out"
    engine: Engine | None = None

    def on_page_done(result) -> None:
        assert engine is not None
        engine.cancel(immediate=True)

    engine = Engine(noop_config(out, noop_ms=100), on_page_done=on_page_done)
    summary = engine.run(archive)
    assert summary.status == "cancelled" and summary.exit_code == 130
    assert len(records(out)) < 12


def test_progress_says_when_documents_are_still_being_found(noop_archive, tmp_path) -> None:
    archive = noop_archive([1] * 40)
    updates = []
    summary = Engine(noop_config(tmp_path / "out"), on_progress=updates.append).run(archive)
    assert summary.pages_total == 40
    assert updates[0].discovering and updates[0].pages_known < 40  # documents are found as the run goes
    assert not updates[-1].discovering and updates[-1].pages_known == 40
    assert all(update.pages_known == 40 for update in updates if not update.discovering)  # only then is it all


def test_the_display_shows_no_percentage_or_eta_while_documents_are_being_found() -> None:
    clock = Clock()
    display = ProgressDisplay(console=Console(file=io.StringIO(), force_terminal=False), log_every=0.0, clock=clock)
    for second in range(3):
        clock.now = 1000.0 + second
        display.set_total(81, final=False)
        display.update(snapshot_of(60 + second), done_pages=60 + second, workers_busy=2, workers_target=2,
                       memory_mb=10.0)
    assert display.last_line.startswith("62 of at least 81 pages, still finding documents, 1.0 pages/s")
    assert "%" not in display.last_line.split(", workers")[0] and "ETA" not in display.last_line
    clock.now += 1
    display.set_total(100)  # every document ingested: the total is known
    display.update(snapshot_of(63), done_pages=63, workers_busy=2, workers_target=2, memory_mb=10.0)
    assert display.last_line.startswith("63/100 pages (63 %), 1.0 pages/s, ETA 37 s")


def test_an_exact_copy_is_processed_once_warned_about_by_both_names_and_counted(noop_archive, tmp_path) -> None:
    from loguru import logger

    archive = noop_archive([2, 1])
    shutil.copy(archive / "doc000.noop", archive / "zcopy.noop")
    out = tmp_path / "out"
    warnings: list[str] = []
    handler = logger.add(lambda message: warnings.append(str(message)), level="WARNING", format="{message}")
    try:
        summary = Engine(noop_config(out)).run(archive)
        again = Engine(noop_config(out)).run(archive)  # both done before: the copy is still said and counted
    finally:
        logger.remove(handler)
    report = json.loads((out / "report.json").read_text())
    assert len(records(out)) == 3 and summary.pages_total == 3  # the copy's pages are not processed
    assert summary.duplicate_documents == 1 and again.duplicate_documents == 1
    assert report["duplicate_documents"] == 1
    copy, original = str(archive / "zcopy.noop"), str(archive / "doc000.noop")
    said = [line for line in warnings if f"{copy} is an exact copy of {original}" in line]
    assert len(said) == 2 and all("not processed again" in line for line in said)  # once in each run
    assert row(table_text(summary), "exact copies, not processed") == "1"
    assert_consistent(again, report)  # report.json is the second run's
