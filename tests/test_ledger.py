"""The run ledger: schema, batching, replacement, round trip, crash safety, foreign files."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time

import pytest

from engine.errors import LedgerError
from engine.ledger import Ledger, open_existing
from engine.records import ErrorInfo, Field, Issue, PageResult


def result(index: int, status: str = "ok", sha: str = "a" * 64, **kw) -> PageResult:
    return PageResult(f"/docs/{sha[:4]}.pdf", sha, index + 1, 9, status, **kw)


def test_new_ledger_has_schema_version_and_wal(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.close()
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == Ledger.SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert dict(db.execute("select key, value from meta").fetchall())["app"] == "pagemill"


def test_round_trip_of_fields_issues_errors(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.start_run({"dpi": 300})
    ok = result(0, "review", fields={"net_lb": Field("net_lb", 41220, 0.93, "41,220 lb", "weight")},
                issues=(Issue("net_mismatch", "net ≠ gross − tare", "net_lb"),), stage_seconds={"ocr": 0.5})
    bad = result(1, "failed", error=ErrorInfo("permanent", "CorruptDocumentError", "broken", "load"), attempts=1)
    ledger.add_result(run, ok)
    ledger.add_result(run, bad)
    assert ledger.flush() == [ok, bad]
    ledger.close()
    again = Ledger(tmp_path / "ledger.sqlite")
    assert list(again.iter_results()) == [ok, bad]
    assert again.counts() == {"ok": 0, "review": 1, "failed": 1, "pages": 2}
    assert again.last_config() == {"dpi": 300}


def test_batches_flush_by_count_and_by_time(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", batch_size=3, batch_seconds=0.05)
    run = ledger.start_run({})
    assert not ledger.flush_due()
    ledger.add_result(run, result(0))
    ledger.add_result(run, result(1))
    assert not ledger.flush_due()
    ledger.add_result(run, result(2))
    assert ledger.flush_due()
    assert len(ledger.flush()) == 3 and not ledger.flush_due()
    ledger.add_result(run, result(3))
    time.sleep(0.06)
    assert ledger.flush_due()


def test_a_redone_page_replaces_its_row_never_two(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, result(0, "failed", error=ErrorInfo("transient", "PageTimeout", "slow")))
    ledger.flush()
    assert ledger.done_keys(include_failed=False) == set()
    assert ledger.done_keys() == {("a" * 64, 0)}
    ledger.add_result(run, result(0, "ok"))
    ledger.flush()
    assert [r.status for r in ledger.iter_results()] == ["ok"]


def _writer(path: str, ready) -> None:
    ledger = Ledger(path, batch_size=1000, batch_seconds=1000)
    run = ledger.start_run({})
    for index in range(20):
        ledger.add_result(run, result(index))
    ledger.flush()  # these 20 are done
    for index in range(20, 40):
        ledger.add_result(run, result(index))  # buffered only
    ready.set()
    time.sleep(60)


def test_kill_between_batches_keeps_exactly_the_committed_pages(tmp_path) -> None:
    path = str(tmp_path / "l.sqlite")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_writer, args=(path, ready))
    child.start()
    assert ready.wait(30)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    ledger = Ledger(path)
    assert sorted(r.page for r in ledger.iter_results()) == list(range(1, 21))


def test_random_bytes_named_ledger_is_a_clear_error_and_untouched(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    junk = os.urandom(4096)
    path.write_bytes(junk)
    with pytest.raises(LedgerError, match="not a pagemill ledger"):
        Ledger(path)
    assert path.read_bytes() == junk


def test_another_sqlite_database_is_a_clear_error_and_untouched(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("create table customers (name text)")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="not a pagemill ledger"):
        Ledger(path)
    assert path.read_bytes() == before


def test_newer_schema_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        db.execute("update meta set value = '99' where key = 'schema_version'")
    with pytest.raises(LedgerError, match="newer"):
        Ledger(path)


def test_open_existing_needs_a_ledger(tmp_path) -> None:
    with pytest.raises(LedgerError, match="no pagemill ledger"):
        open_existing(tmp_path)
