"""Exports from the ledger (XLSX with typed columns) and the SQLite sink across a resumed run."""

from __future__ import annotations

import datetime
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import noop_config

from engine.api import Engine
from engine.cli import main as pagemill
from engine.ledger import Ledger
from engine.records import ErrorInfo, Field, Issue, PageResult

ROOT = Path(__file__).resolve().parents[1]


def ticket(page: int, status: str = "ok", **kw) -> PageResult:
    fields = {
        "ticket_number": Field("ticket_number", f"10{page}", 0.95, type="id"),
        "date": Field("date", "2026-03-14", 0.9, type="date"),
        "net_lb": Field("net_lb", 41220 + page, 0.9, type="weight"),
        "net_tons": Field("net_tons", 20.61, 0.9, type="weight"),
    }
    return PageResult("/a/t.pdf", "f" * 64, page, 3, status, fields=fields, **kw)


def test_xlsx_has_tickets_review_and_summary_with_types(tmp_path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, ticket(1))
    ledger.add_result(run, ticket(2, "review", issues=(Issue("net_mismatch", "net is off", "net_lb"),)))
    ledger.add_result(run, PageResult("/a/bad.pdf", "e" * 64, 0, 0, "failed",
                                      error=ErrorInfo("permanent", "CorruptDocumentError", "broken")))
    ledger.finish_run(run, "partial", {"pages_per_second": 3.5})
    ledger.close()
    assert pagemill(["export", str(tmp_path), "--format", "xlsx"]) == 0
    book = openpyxl.load_workbook(tmp_path / "results.xlsx")
    assert book.sheetnames == ["Tickets", "Review", "Summary"]
    rows = list(book["Tickets"].iter_rows(values_only=True))
    assert rows[0][:7] == ("document", "page", "status", "ticket_number", "date", "net_lb", "net_tons")
    assert len(rows) == 4
    first = next(r for r in rows[1:] if r[0] == "/a/t.pdf" and r[1] == 1)
    assert isinstance(first[4], datetime.datetime) and first[4].date() == datetime.date(2026, 3, 14)
    assert first[5] == 41221 and isinstance(first[6], float)
    assert first[3] == "101"
    review = list(book["Review"].iter_rows(values_only=True))
    assert {(r[0], r[2]) for r in review[1:]} == {("/a/t.pdf", "review"), ("/a/bad.pdf", "failed")}
    assert any("net is off" in r[3] for r in review[1:]) and any("CorruptDocumentError" in r[3] for r in review[1:])
    rows = [row for row in book["Summary"].iter_rows(values_only=True) if row[0]]
    labels = [label for label, _ in rows]
    summary = dict(rows)
    # two blocks with human labels: the folder's totals, then the last run's figures
    assert labels.index("Output folder") < labels.index("Pages") < labels.index("Last run") < labels.index(
        "Pages per second")
    assert (summary["Pages"], summary["OK"], summary["To review"], summary["Failed"]) == (3, 1, 1, 1)
    assert summary["Documents"] == 2 and summary["Runs"] == 1
    assert summary["Last run"] == "run 1" and summary["Status"] == "partial" and summary["Pages per second"] == 3.5
    assert not [label for label in labels if "_" in label]


def test_xlsx_columns_fit_their_content_up_to_a_cap_with_filters_and_a_frozen_header(tmp_path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, ticket(1))
    ledger.add_result(run, ticket(2, "review", issues=(Issue("net_mismatch", "net is off " * 30, "net_lb"),)))
    ledger.finish_run(run, "finished", {})
    ledger.close()
    assert pagemill(["export", str(tmp_path), "--format", "xlsx"]) == 0
    book = openpyxl.load_workbook(tmp_path / "results.xlsx")
    tickets, review = book["Tickets"], book["Review"]
    assert tickets.freeze_panes == "A2" and review.freeze_panes == "A2"
    assert tickets.auto_filter.ref == "A1:H3" and review.auto_filter.ref == "A1:D2"
    assert tickets.column_dimensions["A"].width == len("document") + 2  # the widest text, plus a margin
    assert tickets.column_dimensions["D"].width == len("ticket_number") + 2
    assert review.column_dimensions["D"].width == 60  # a long reason is capped


def test_export_writes_where_o_says(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, ticket(1))
    ledger.add_result(run, ticket(2, "review", issues=(Issue("net_mismatch", "net is off", "net_lb"),)))
    ledger.close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert pagemill(["export", str(tmp_path), "--format", "jsonl", "-o", str(elsewhere / "pages.jsonl")]) == 0
    assert (elsewhere / "pages.jsonl").read_text().count("\n") == 2
    assert pagemill(["export", str(tmp_path), "--format", "csv", "-o", str(elsewhere / "tickets.csv")]) == 0
    assert "ticket_number" in (elsewhere / "tickets.csv").read_text("utf-8-sig").splitlines()[0]
    assert "net is off" in (elsewhere / "review.csv").read_text("utf-8-sig")  # beside it, its usual name
    assert pagemill(["export", str(tmp_path), "--format", "jsonl", "-o", str(elsewhere)]) == 0  # a folder
    assert (elsewhere / "results.jsonl").read_text().count("\n") == 2
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(("results", "review", "report"))]
    assert pagemill(["export", str(tmp_path), "--format", "csv", "-o", str(elsewhere / "review.csv")]) == 2


def test_export_jsonl_and_csv(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, ticket(1))
    ledger.close()
    assert pagemill(["export", str(tmp_path), "--format", "csv"]) == 0
    assert "ticket_number" in (tmp_path / "results.csv").read_text("utf-8-sig").splitlines()[0]
    assert pagemill(["export", str(tmp_path), "--format", "jsonl"]) == 0
    assert (tmp_path / "results.jsonl").read_text().count("\n") == 1


@pytest.mark.slow
def test_sqlite_sink_has_every_ticket_once_after_a_killed_and_resumed_run(noop_archive, tmp_path) -> None:
    archive = noop_archive([10, 10, 10])
    out, db = tmp_path / "out", tmp_path / "tickets.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "engine.cli", "run", str(archive), "--out", str(out), "--plugin", "plugins.noop",
            "--noop-ms", "150", "--workers", "2", "--no-progress", "--sink", f"sqlite:///{db}"]
    process = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(2.0)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    with sqlite3.connect(db) as conn:
        partial = conn.execute("select count(*) from tickets").fetchone()[0]
    assert 0 < partial < 30
    done = subprocess.run([sys.executable, "-m", "engine.cli", "resume", str(out), "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select sha256, page from tickets").fetchall()
    assert len(rows) == len(set(rows)) == 30


def test_sink_in_the_api_gets_each_page(noop_archive, tmp_path) -> None:
    archive = noop_archive([3])
    db = tmp_path / "t.db"
    with Engine(noop_config(tmp_path / "out", sinks=(f"sqlite:///{db}",))) as engine:
        engine.run(archive)
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from tickets").fetchone()[0] == 3


def test_xlsx_keeps_untrusted_text_as_text_never_a_formula(tmp_path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    named = '=HYPERLINK("http:x","y").noop'
    fields = {"ticket_number": Field("ticket_number", "=1+2", 0.9, type="id"),
              "carrier": Field("carrier", "@SUM(A1)", 0.9, type="text"),
              "note": Field("note", "#N/A", 0.9, type="text")}
    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, PageResult(named, "d" * 64, 1, 1, "review", fields=fields,
                                      issues=(Issue("low_confidence", "=cmd|' /C calc'!A0", "carrier"),)))
    ledger.add_result(run, PageResult("/a/bell\x07.pdf", "c" * 64, 1, 1, "ok",
                                      fields={"carrier": Field("carrier", "ACME\x0c", 0.9, type="text")}))
    ledger.finish_run(run, "finished", {})
    ledger.close()
    assert pagemill(["export", str(tmp_path), "--format", "xlsx"]) == 0
    book = openpyxl.load_workbook(tmp_path / "results.xlsx")
    cells = [cell for sheet in book for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert not [cell.coordinate for cell in cells if cell.data_type in ("f", "e")]
    tickets = {row[0]: row for row in book["Tickets"].iter_rows(values_only=True)}
    header = tickets["document"]
    row = dict(zip(header, tickets[named]))  # the name as it is, not a formula's result
    assert (row["ticket_number"], row["carrier"], row["note"]) == ("=1+2", "@SUM(A1)", "#N/A")
    review = list(book["Review"].iter_rows(values_only=True))
    assert review[1][0] == named and "=cmd|' /C calc'!A0" in review[1][3]
    first = next(cell for cell in book["Tickets"]["A"] if cell.value == named)
    assert first.quotePrefix  # a spreadsheet keeps it text when the cell is edited
    assert "/a/bell\ufffd.pdf" in tickets  # a control character an XLSX cannot hold, replaced


def test_an_export_during_a_run_never_overwrites_the_runs_own_outputs(tmp_path) -> None:
    from engine.outlock import OutputLock

    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, ticket(1))
    ledger.close()
    own = {name: f"the run's {name}\n" for name in ("results.jsonl", "results.csv", "review.csv")}
    for name, text in own.items():
        (tmp_path / name).write_text(text)
    lock = OutputLock(tmp_path).acquire()  # a run is writing the folder
    try:
        assert pagemill(["export", str(tmp_path), "--format", "jsonl"]) == 0
        assert pagemill(["export", str(tmp_path), "--format", "csv"]) == 0
        assert {name: (tmp_path / name).read_text() for name in own} == own  # the run's files untouched
        assert (tmp_path / "export" / "results.jsonl").read_text().count("\n") == 1
        assert "ticket_number" in (tmp_path / "export" / "results.csv").read_text("utf-8-sig")
        assert (tmp_path / "export" / "review.csv").exists()
        assert pagemill(["export", str(tmp_path), "--format", "jsonl", "-o", str(tmp_path / "results.jsonl")]) == 2
        assert pagemill(["export", str(tmp_path), "--format", "csv", "-o", str(tmp_path)]) == 2  # DIR/results.csv
        assert (tmp_path / "results.jsonl").read_text() == own["results.jsonl"]
        assert pagemill(["export", str(tmp_path), "--format", "jsonl", "-o", str(tmp_path / "now.jsonl")]) == 0
        assert (tmp_path / "now.jsonl").read_text().count("\n") == 1
        assert pagemill(["export", str(tmp_path), "--format", "xlsx"]) == 0  # no run writes results.xlsx
        assert (tmp_path / "results.xlsx").exists() and not (tmp_path / "export" / "results.xlsx").exists()
    finally:
        lock.release()
    assert pagemill(["export", str(tmp_path), "--format", "jsonl"]) == 0  # no run: the usual place
    assert (tmp_path / "results.jsonl").read_text().count("\n") == 1
