"""Outputs written from the ledger: the four files, their columns and records, atomic replacement."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.ledger import Ledger
from engine.records import ErrorInfo, Field, Issue, PageResult
from engine.sinks import OUTPUT_NAMES, atomic_file, write_outputs

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def ticket(document: str, sha: str, page: int, status: str = "ok", issues: tuple[Issue, ...] = (),
           **fields: tuple) -> PageResult:
    made = {name: Field(name, value, confidence, raw) for name, (value, confidence, raw) in fields.items()}
    return PageResult(document, sha, page, 3, status, fields=made, issues=issues, stage_seconds={"ocr": 0.41234567},
                      text_source="embedded-image")


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.reader(handle))


def strict_json(line: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(line, parse_constant=refuse)


@pytest.fixture
def ledger(tmp_path) -> Iterator[Ledger]:
    """Pages committed out of order, a review page, a failed page and a document that failed whole."""
    (tmp_path / "out").mkdir()
    ledger = Ledger(tmp_path / "out" / "ledger.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, ticket("/in/b.pdf", SHA_B, 1, ticket_number=("T-200", 0.9, "T-200"),
                                  carrier=("Acme Haul", 0.6, "ACME HAUL")))
    issues = (Issue("net_mismatch", "net is not gross minus tare", "net_lb"), Issue("faint", "faint print", None, "info"))
    ledger.add_result(run, ticket("/in/a.pdf", SHA_A, 2, "review", issues, ticket_number=("T-102", 0.8, "T-1O2"),
                                  net_lb=(41220, 0.6, "41,220")))
    ledger.add_result(run, ticket("/in/a.pdf", SHA_A, 1, ticket_number=("T-101", 1.0, "T-101"), date=("2026-03-14", 0.8, "")))
    ledger.add_result(run, PageResult("/in/a.pdf", SHA_A, 3, 3, "failed", attempts=3,
                                      error=ErrorInfo("transient", "PageTimeout", "page ran past 300 s", "ocr")))
    ledger.add_result(run, PageResult("/in/c.pdf", SHA_C, 0, 0, "failed",
                                      error=ErrorInfo("permanent", "EncryptedDocumentError", "needs a password", "ingest")))
    ledger.flush()
    yield ledger
    ledger.close()


def test_all_four_files_are_written_and_nothing_else(ledger, tmp_path) -> None:
    out = tmp_path / "out"
    paths = write_outputs(ledger, out, {"run_id": 1})
    assert set(paths) == set(OUTPUT_NAMES) and all(paths[name] == out / name for name in OUTPUT_NAMES)
    assert {p.name for p in out.iterdir() if not p.name.startswith("ledger.sqlite")} == set(OUTPUT_NAMES)


def test_jsonl_has_one_complete_record_per_page_in_document_then_page_order(ledger, tmp_path) -> None:
    paths = write_outputs(ledger, tmp_path / "out", {})
    records = [strict_json(line) for line in paths["results.jsonl"].read_text(encoding="utf-8").splitlines()]
    assert [(r["document"], r["page"]) for r in records] == [
        ("/in/a.pdf", 1), ("/in/a.pdf", 2), ("/in/a.pdf", 3), ("/in/b.pdf", 1), ("/in/c.pdf", 0)]
    review = records[1]
    assert review["sha256"] == SHA_A and review["status"] == "review"
    assert review["fields"] == {"ticket_number": {"value": "T-102", "confidence": 0.8, "raw": "T-1O2"},
                                "net_lb": {"value": 41220, "confidence": 0.6, "raw": "41,220"}}
    assert review["issues"][0] == {"code": "net_mismatch", "message": "net is not gross minus tare", "field": "net_lb"}
    assert review["error"] is None and review["attempts"] == 1 and review["text_source"] == "embedded-image"
    assert review["stage_seconds"] == {"ocr": 0.4123}
    assert records[2]["error"] == {"class": "transient", "type": "PageTimeout", "message": "page ran past 300 s",
                                   "stage": "ocr"}
    assert records[2]["attempts"] == 3


def test_csv_has_a_column_per_field_in_order_of_first_appearance(ledger, tmp_path) -> None:
    rows = read_csv(write_outputs(ledger, tmp_path / "out", {})["results.csv"])
    assert rows[0] == ["document", "page", "status", "ticket_number", "date", "net_lb", "carrier", "confidence",
                       "issues"]
    by_page = {(row[0], row[1]): dict(zip(rows[0], row)) for row in rows[1:]}
    assert len(by_page) == len(rows) - 1 == 5
    first = by_page[("/in/a.pdf", "1")]
    assert first["ticket_number"] == "T-101" and first["date"] == "2026-03-14" and first["net_lb"] == ""
    assert float(first["confidence"]) == pytest.approx(0.9)  # the mean of 1.0 and 0.8
    assert by_page[("/in/a.pdf", "2")]["issues"] == "net_mismatch; faint"
    assert by_page[("/in/a.pdf", "3")]["issues"] == "error: PageTimeout"
    assert by_page[("/in/a.pdf", "3")]["confidence"] == ""
    assert by_page[("/in/b.pdf", "1")]["carrier"] == "Acme Haul"


def test_review_csv_lists_review_and_failed_pages_with_their_reasons(ledger, tmp_path) -> None:
    rows = read_csv(write_outputs(ledger, tmp_path / "out", {})["review.csv"])
    assert rows[0] == ["document", "page", "status", "reasons"]
    reasons = {(row[0], row[1], row[2]): row[3] for row in rows[1:]}
    assert set(reasons) == {("/in/a.pdf", "2", "review"), ("/in/a.pdf", "3", "failed"), ("/in/c.pdf", "0", "failed")}
    assert reasons[("/in/a.pdf", "2", "review")] == "net is not gross minus tare"  # the info issue is no reason
    assert "PageTimeout" in reasons[("/in/a.pdf", "3", "failed")] and "ocr" in reasons[("/in/a.pdf", "3", "failed")]
    assert "EncryptedDocumentError: needs a password" in reasons[("/in/c.pdf", "0", "failed")]


def test_report_adds_totals_counted_from_the_ledger(ledger, tmp_path) -> None:
    given = {"run_id": 7, "wall_seconds": 1.5, "pages": 999, "pages_failed": 1, "errors_by_class": {"permanent": 1}}
    report = json.loads(write_outputs(ledger, tmp_path / "out", given)["report.json"].read_text())
    assert report["run_id"] == 7 and report["wall_seconds"] == 1.5
    assert (report["pages"], report["ok"], report["review"], report["failed"]) == (5, 2, 1, 2)
    assert (report["outputs_ok"], report["outputs_review"], report["outputs_failed"]) == (2, 1, 2)
    # the folder's errors beside the folder's failed pages; the run's stay beside the run's
    assert report["outputs_errors_by_class"] == {"transient": 1, "permanent": 1}
    assert report["outputs_errors_by_type"] == {"PageTimeout": 1, "EncryptedDocumentError": 1}
    assert report["errors_by_class"] == {"permanent": 1} and report["pages_failed"] == 1


def test_a_redone_page_appears_once_and_only_committed_pages_appear(ledger, tmp_path) -> None:
    run = ledger.start_run({"retry_failed": True})
    ledger.add_result(run, ticket("/in/a.pdf", SHA_A, 3, ticket_number=("T-103", 0.9, "T-103")))
    ledger.flush()
    ledger.add_result(run, ticket("/in/d.pdf", "d" * 64, 1))  # buffered, not committed
    paths = write_outputs(ledger, tmp_path / "out", {})
    records = [json.loads(line) for line in paths["results.jsonl"].read_text().splitlines()]
    keys = [(r["sha256"], r["page"]) for r in records]
    assert len(keys) == len(set(keys)) == 5
    assert next(r for r in records if r["document"] == "/in/a.pdf" and r["page"] == 3)["status"] == "ok"
    assert all(r["document"] != "/in/d.pdf" for r in records)
    pages = [(row[0], row[1]) for row in read_csv(paths["results.csv"])[1:]]
    assert len(pages) == len(set(pages)) == 5
    assert ("/in/a.pdf", "3") not in {(row[0], row[1]) for row in read_csv(paths["review.csv"])[1:]}


def test_formula_like_text_is_defused_in_csv_but_kept_in_jsonl(tmp_path) -> None:
    with Ledger(None) as ledger:
        run = ledger.start_run({})
        ledger.add_result(run, ticket("/in/x.pdf", SHA_A, 1, note=("=HYPERLINK(\"http://x\")", 0.5, ""),
                                      delta=("-12.5", 0.9, ""), nan=(float("nan"), 0.9, "")))
        ledger.flush()
        paths = write_outputs(ledger, tmp_path, {})
    row = dict(zip(*read_csv(paths["results.csv"])))
    assert row["note"] == "'=HYPERLINK(\"http://x\")" and row["delta"] == "-12.5"
    record = strict_json(paths["results.jsonl"].read_text().splitlines()[0])
    assert record["fields"]["note"]["value"] == "=HYPERLINK(\"http://x\")"
    assert record["fields"]["nan"]["value"] is None  # NaN is not JSON


def test_a_failure_while_writing_leaves_the_previous_files_whole(ledger, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    write_outputs(ledger, out, {})
    before = {name: (out / name).read_bytes() for name in OUTPUT_NAMES}

    real = ledger.output_rows

    def broken():
        yield next(real())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ledger, "output_rows", broken)
    with pytest.raises(OSError):
        write_outputs(ledger, out, {})
    assert {name: (out / name).read_bytes() for name in OUTPUT_NAMES} == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_outputs_get_the_usual_file_permissions(ledger, tmp_path) -> None:
    previous = os.umask(0o022)
    try:
        paths = write_outputs(ledger, tmp_path / "out", {})
    finally:
        os.umask(previous)
    assert {oct(path.stat().st_mode & 0o777) for path in paths.values()} == {oct(0o644)}


def test_a_file_that_cannot_be_made_is_named_as_asked_not_by_its_temporary_name(tmp_path) -> None:
    target = tmp_path / "missing-folder" / "results.xlsx"
    with pytest.raises(FileNotFoundError) as caught:
        with atomic_file(target, "wb"):
            pass
    assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)


def test_the_csv_files_carry_a_byte_order_mark_so_spreadsheets_read_accents(tmp_path) -> None:
    with Ledger(None) as ledger:
        run = ledger.start_run({})
        ledger.add_result(run, ticket("/in/é.pdf", SHA_A, 1, "review", (Issue("odd", "Transports Gagné"),),
                                      carrier=("Transports Gagné", 0.9, "")))
        ledger.flush()
        paths = write_outputs(ledger, tmp_path / "out", {})
    for name in ("results.csv", "review.csv"):
        assert paths[name].read_bytes().startswith(b"\xef\xbb\xbfdocument,page,status,")
    assert read_csv(paths["results.csv"])[1][3] == "Transports Gagné"
    assert read_csv(paths["review.csv"])[1][3] == "Transports Gagné"
    assert not paths["results.jsonl"].read_bytes().startswith(b"\xef\xbb\xbf")


def dead_pid() -> int:
    """The pid of a process that has ended."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_writing_the_outputs_removes_temporaries_left_by_a_killed_writer(ledger, tmp_path) -> None:
    out = tmp_path / "out"
    gone = dead_pid()
    stale = [out / f".results.jsonl.{gone}.0123abcd.tmp", out / f".report.json.{gone}.89abcdef.tmp",
             out / f".results.xlsx.{gone}.00ff00ff.tmp"]
    kept = [out / f".results.csv.{os.getpid()}.fedcba98.tmp",  # a live writer's (this process)
            out / f".notes.txt.{gone}.01234567.tmp",  # not a file pagemill writes here
            out / f"results.jsonl.{gone}.0123abcd.tmp"]  # not a pagemill temporary name
    for path in stale + kept:
        path.write_text("partial")
    write_outputs(ledger, out, {})
    assert [path.exists() for path in stale[:2]] == [False, False]
    assert stale[2].exists()  # the workbook's are removed when a workbook is written
    assert all(path.exists() for path in kept)
    with atomic_file(out / "results.xlsx", "wb") as handle:
        handle.write(b"x")
    assert not stale[2].exists() and all(path.exists() for path in kept)
