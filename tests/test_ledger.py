"""The run ledger: schema, reopening, foreign files, batching, replacement, round trip, crash safety."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from engine.errors import LedgerError, NoLedgerError
from engine.ledger import Ledger, open_existing
from engine.records import ErrorInfo, Field, Issue, PageResult

SHA_A, SHA_B = "a" * 64, "b" * 64


def result(index: int, status: str = "ok", sha: str = SHA_A, document: str | None = None, **kw) -> PageResult:
    return PageResult(document or f"/docs/{sha[:4]}.pdf", sha, index + 1, 9, status, **kw)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------------------------- schema
def test_a_new_ledger_has_the_schema_its_version_and_wal(tmp_path) -> None:
    Ledger(tmp_path / "ledger.sqlite").close()
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == Ledger.SCHEMA_VERSION == 3
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(db.execute("select key, value from meta").fetchall())
        assert meta["app"] == "pagemill" and meta["schema_version"] == "3"
        tables = {name for (name,) in db.execute("select name from sqlite_master where type='table'")}
        assert {"meta", "runs", "documents", "pages", "attempts"} <= tables
        columns = {row[1] for row in db.execute("PRAGMA table_info(pages)")}
        assert {"sha256", "page_index", "document", "status", "attempts", "error_class", "error_type",
                "error_message", "error_stage", "stage_seconds", "fields", "issues", "confidence",
                "text_source", "run_id", "finished"} <= columns
        db.execute("insert into pages (sha256, page_index, document, status, attempts, run_id, finished) "
                   "values ('x', 0, 'd', 'ok', 1, 1, 'now')")
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("insert into pages (sha256, page_index, document, status, attempts, run_id, finished) "
                       "values ('x', 0, 'd', 'ok', 1, 1, 'now')")


def test_reopening_keeps_runs_documents_and_pages(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        run = ledger.start_run({"dpi": 300, "lang": "eng"})
        ledger.record_document(SHA_A, "/docs/a.pdf", 1234, 2, "ingested")
        ledger.add_result(run, result(0))
        ledger.add_result(run, result(1, "review", issues=(Issue("missing_field", "no date", "date"),)))
        ledger.finish_run(run, "finished", {"pages_ok": 1})
    again = open_existing(tmp_path)
    assert again.runs()[0]["status"] == "finished" and again.runs()[0]["summary"] == {"pages_ok": 1}
    assert again.runs()[0]["finished"] is not None
    assert again.last_config() == {"dpi": 300, "lang": "eng"}
    assert again.document_pages() == {SHA_A: 2}
    assert again.done_keys() == {(SHA_A, 0), (SHA_A, 1)}
    assert again.counts() == {"ok": 1, "review": 1, "failed": 0, "pages": 2}
    second = again.start_run({"dpi": 200})
    assert second == run + 1 and again.last_config() == {"dpi": 200}
    again.close()


def test_open_existing_needs_a_ledger(tmp_path) -> None:
    with pytest.raises(NoLedgerError, match="no pagemill ledger") as caught:
        open_existing(tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert not (tmp_path / "ledger.sqlite").exists()


def test_a_folder_that_cannot_hold_the_file_is_a_ledger_error(tmp_path) -> None:
    with pytest.raises(LedgerError, match="cannot open"):
        Ledger(tmp_path / "missing" / "ledger.sqlite")


# ------------------------------------------------------------------------------ foreign files
def test_random_bytes_named_ledger_is_a_clear_error_and_untouched(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    junk = os.urandom(8192)
    path.write_bytes(junk)
    with pytest.raises(LedgerError, match="not a pagemill ledger") as caught:
        Ledger(path)
    assert str(path) in str(caught.value)
    assert files_of(tmp_path) == {"ledger.sqlite": junk}


def test_another_sqlite_database_is_a_clear_error_and_untouched(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("create table customers (name text)")
        db.execute("insert into customers values ('Acme Gravel')")
    db.close()
    before = files_of(tmp_path)
    with pytest.raises(LedgerError, match="not a pagemill ledger") as caught:
        Ledger(path)
    assert str(path) in str(caught.value)
    assert files_of(tmp_path) == before


def _leave_uncheckpointed_wal(path: str) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("create table customers (name text)")
    db.execute("insert into customers values ('Acme Gravel')")
    db.commit()
    os.kill(os.getpid(), signal.SIGKILL)  # no checkpoint at close: the rows live in the WAL only


def test_a_foreign_database_with_a_live_wal_keeps_its_file_and_wal(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    child = multiprocessing.get_context("spawn").Process(target=_leave_uncheckpointed_wal, args=(str(path),))
    child.start()
    child.join(30)
    wal = tmp_path / "ledger.sqlite-wal"
    assert wal.stat().st_size > 0
    before = (path.read_bytes(), wal.read_bytes())
    with pytest.raises(LedgerError, match="not a pagemill ledger"):
        Ledger(path)
    assert (path.read_bytes(), wal.read_bytes()) == before


@pytest.mark.parametrize("how", ["meta", "user_version"])
def test_a_newer_schema_is_a_clear_error_and_untouched(tmp_path, how) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    if how == "meta":
        db.execute("update meta set value = '99' where key = 'schema_version'")
    else:
        db.execute(f"PRAGMA user_version={Ledger.SCHEMA_VERSION + 1}")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    before = files_of(tmp_path)
    with pytest.raises(LedgerError, match="newer") as caught:
        Ledger(path)
    assert str(path) in str(caught.value)
    assert files_of(tmp_path) == before


def test_an_empty_file_becomes_a_ledger(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.touch()
    with Ledger(path) as ledger:
        ledger.start_run({})
    assert open_existing(tmp_path).runs()[0]["status"] == "running"


def test_a_blank_sqlite_file_left_by_a_cut_short_creation_becomes_a_ledger(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")  # what a new ledger does before it creates its tables
    db.close()
    assert path.stat().st_size > 0
    with Ledger(path) as ledger:
        assert ledger.start_run({"dpi": 300}) == 1
    assert open_existing(tmp_path).last_config() == {"dpi": 300}


# ----------------------------------------------------------------------------------- batching
def test_flush_is_due_by_count(tmp_path) -> None:
    clock = FakeClock()
    ledger = Ledger(tmp_path / "l.sqlite", batch_size=3, batch_seconds=10.0, clock=clock)
    run = ledger.start_run({})
    assert not ledger.flush_due() and ledger.flush() == []
    ledger.add_result(run, result(0))
    ledger.add_result(run, result(1))
    assert not ledger.flush_due() and ledger.pending == 2
    ledger.add_result(run, result(2))
    assert ledger.flush_due()
    assert [r.page for r in ledger.flush()] == [1, 2, 3]
    assert not ledger.flush_due() and ledger.pending == 0


def test_flush_is_due_by_time_since_the_first_buffered(tmp_path) -> None:
    clock = FakeClock()
    ledger = Ledger(tmp_path / "l.sqlite", batch_size=100, batch_seconds=0.2, clock=clock)
    run = ledger.start_run({})
    clock.now += 50  # idle time before anything is buffered does not count
    ledger.add_result(run, result(0))
    clock.now += 0.15
    ledger.add_result(run, result(1))
    assert not ledger.flush_due()
    clock.now += 0.05
    assert ledger.flush_due()
    ledger.flush()
    ledger.add_attempt(run, SHA_A, 5, 1, ErrorInfo("transient", "TimeoutError", "slow"), 1.5)
    assert not ledger.flush_due()
    clock.now += 0.2
    assert ledger.flush_due()  # attempts alone are committed on time too
    assert ledger.flush() == []
    assert ledger.db.execute("select count(*) from attempts").fetchone()[0] == 1


def test_buffered_results_are_not_done_until_flushed(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, result(0))
    assert ledger.done_keys() == set() and list(ledger.iter_results()) == []
    ledger.flush()
    assert ledger.done_keys() == {(SHA_A, 0)}


def test_close_flushes_and_twice_is_harmless(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, result(0))
    ledger.close()
    ledger.close()
    assert Ledger(tmp_path / "l.sqlite").counts()["ok"] == 1


def test_a_failed_write_keeps_the_buffer_and_raises_a_ledger_error(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    run = ledger.start_run({})
    ledger.add_result(run, result(0))
    ledger.db.execute("PRAGMA query_only=1")  # every write now fails
    with pytest.raises(LedgerError, match="cannot write") as caught:
        ledger.flush()
    assert "l.sqlite" in str(caught.value)
    ledger.db.execute("PRAGMA query_only=0")
    assert [r.page for r in ledger.flush()] == [1]
    assert ledger.counts()["ok"] == 1


# -------------------------------------------------------------------------------- replacement
def test_a_redone_page_replaces_its_row_never_two(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    first = ledger.start_run({})
    ledger.add_attempt(first, SHA_A, 0, 1, ErrorInfo("transient", "PageTimeout", "slow"), 300.0)
    ledger.add_result(first, result(0, "failed", error=ErrorInfo("transient", "PageTimeout", "slow"), attempts=1))
    ledger.flush()
    assert ledger.done_keys(include_failed=False) == set()
    assert ledger.done_keys() == {(SHA_A, 0)}
    second = ledger.start_run({"retry_failed": True})
    ledger.add_attempt(second, SHA_A, 0, 1, None, 0.4)
    ledger.add_result(second, result(0, "ok"))
    ledger.flush()
    assert [(r.status, r.error) for r in ledger.iter_results()] == [("ok", None)]
    assert ledger.counts() == {"ok": 1, "review": 0, "failed": 0, "pages": 1}
    assert ledger.counts(first)["pages"] == 0 and ledger.counts(second)["ok"] == 1
    assert ledger.db.execute("select count(*) from pages").fetchone()[0] == 1
    assert ledger.db.execute("select count(*) from attempts where sha256=?", (SHA_A,)).fetchone()[0] == 2


def test_two_results_for_one_page_in_one_batch_commit_the_later_once(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    run = ledger.start_run({})
    failed = result(0, "failed", error=ErrorInfo("permanent", "ValueError", "bad"))
    redone = result(0, "review", issues=(Issue("low_confidence", "blurry"),))
    ledger.add_result(run, failed)
    ledger.add_result(run, result(1))
    ledger.add_result(run, redone)
    committed = ledger.flush()
    assert committed == [result(1), redone]
    assert list(ledger.iter_results()) == [redone, result(1)]


def test_record_document_is_an_upsert_that_keeps_a_known_page_count(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.record_document(SHA_A, "/docs/a.pdf", 100, 3, "ingested")
    ledger.record_document(SHA_A, "/renamed/a.pdf", 100, None, "failed",
                           ErrorInfo("permanent", "CorruptDocumentError", "xref broken"))
    rows = ledger.db.execute("select path, pages, status, error_class, error_type, error_message from documents").fetchall()
    assert rows == [("/renamed/a.pdf", 3, "failed", "permanent", "CorruptDocumentError", "xref broken")]


# --------------------------------------------------------------------------------- round trip
def test_round_trip_of_fields_issues_errors_in_document_then_page_order(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.start_run({"dpi": 300})
    review = result(1, "review", sha=SHA_B, document="/docs/a.pdf",
                    fields={"net_lb": Field("net_lb", 41220, 0.9, "41,220 lb", "weight"),
                            "date": Field("date", "2026-03-14", 0.7, "03/14/26", "date")},
                    issues=(Issue("net_mismatch", "net ≠ gross − tare", "net_lb"), Issue("note", "faint", None, "info")),
                    stage_seconds={"load": 0.01, "ocr": 0.5}, text_source="embedded-image", attempts=2)
    failed = result(0, "failed", sha=SHA_B, document="/docs/a.pdf",
                    error=ErrorInfo("permanent", "CorruptDocumentError", "broken\nstream", "load"), attempts=1)
    later = result(0, "ok", sha=SHA_A, document="/docs/z.pdf", fields={"ticket": Field("ticket", "T-1", 1.0)})
    whole_document = PageResult("/docs/m.pdf", "c" * 64, 0, 0, "failed",
                                error=ErrorInfo("permanent", "EncryptedDocumentError", "password", "ingest"))
    for item in (later, review, whole_document, failed):
        ledger.add_result(run, item)
    ledger.flush()
    ledger.close()
    again = Ledger(tmp_path / "ledger.sqlite")
    assert list(again.iter_results()) == [failed, review, whole_document, later]
    assert list(again.iter_results(run_id=run + 1)) == []
    assert again.done_keys() == {(SHA_B, 0), (SHA_B, 1), (SHA_A, 0), ("c" * 64, -1)}
    assert again.done_keys(include_failed=False) == {(SHA_B, 1), (SHA_A, 0)}
    confidence = again.db.execute("select confidence from pages where sha256=? and page_index=1", (SHA_B,)).fetchone()
    assert confidence[0] == pytest.approx(0.8)
    assert again.field_names() == ["net_lb", "date", "ticket"]


def test_iter_results_streams_and_an_abandoned_iteration_blocks_nothing(tmp_path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", batch_size=1000)
    run = ledger.start_run({})
    for index in range(300):
        ledger.add_result(run, result(index))
    ledger.flush()
    stream = ledger.iter_results()
    assert next(stream).page == 1 and next(stream).page == 2
    stream.close()
    ledger.add_result(run, result(300))
    assert len(ledger.flush()) == 1
    assert sum(1 for _ in ledger.iter_results()) == 301


# ---------------------------------------------------------------------------------- crash safety
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
    assert ledger.done_keys() == {(SHA_A, index) for index in range(20)}


BATCH = 10


def _busy_writer(path: str, committed) -> None:
    ledger = Ledger(path, batch_size=BATCH)
    run = ledger.start_run({})
    for batch in range(100_000):
        for index in range(batch * BATCH, (batch + 1) * BATCH):
            ledger.add_result(run, result(index, fields={"n": Field("n", index, 0.9)}))
            ledger.add_attempt(run, SHA_A, index, 1, None, 0.01)
        ledger.flush()
        committed.value = (batch + 1) * BATCH


def test_kill_at_any_moment_leaves_whole_batches_and_a_sound_file(tmp_path) -> None:
    path = str(tmp_path / "l.sqlite")
    ctx = multiprocessing.get_context("spawn")
    committed = ctx.Value("q", 0, lock=False)
    child = ctx.Process(target=_busy_writer, args=(path, committed))
    child.start()
    deadline = time.monotonic() + 30
    while committed.value < 20 * BATCH and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = committed.value
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert seen >= 20 * BATCH
    ledger = Ledger(path)
    assert ledger.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    pages = sorted(r.page for r in ledger.iter_results())
    assert len(pages) >= seen and len(pages) % BATCH == 0
    assert pages == list(range(1, len(pages) + 1))
    attempts = ledger.db.execute("select count(*) from attempts").fetchone()[0]
    assert attempts == len(pages)  # a batch's attempts and results commit together


# ---------------------------------------------------------------------------------- delivery
def test_a_committed_page_is_undelivered_until_marked_and_the_mark_goes_with_the_next_batch(tmp_path) -> None:
    clock = FakeClock()
    ledger = Ledger(tmp_path / "ledger.sqlite", batch_size=50, batch_seconds=0.2, clock=clock)
    run = ledger.start_run({})
    ledger.add_result(run, result(0))
    ledger.add_result(run, result(1))
    ledger.flush()
    assert [r.page for r in ledger.undelivered()] == [1, 2]
    ledger.mark_delivered(run, (SHA_A, 0))
    assert not ledger.flush_due()
    clock.now += 0.2
    assert ledger.flush_due()  # a mark alone is written on time too
    ledger.flush()
    assert [r.page for r in ledger.undelivered()] == [2]
    ledger.amend(run, (SHA_A, 0), lambda r: r)  # an amended page stays delivered
    assert [r.page for r in ledger.undelivered()] == [2]
    ledger.close()


def test_a_schema_2_ledger_is_upgraded_with_its_pages_counted_delivered(tmp_path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        run = ledger.start_run({"dpi": 300})
        ledger.add_result(run, result(0))
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:  # as version 2 left it
        db.execute("ALTER TABLE pages DROP COLUMN delivered")
        db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
        db.execute("PRAGMA user_version=2")
    with open_existing(tmp_path, read_only=True) as reader:
        assert reader.undelivered() == [] and reader.counts()["pages"] == 1
    with open_existing(tmp_path) as ledger:
        assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == 3
        assert ledger.undelivered() == [] and [r.page for r in ledger.iter_results()] == [1]


def test_the_batch_defaults_are_50_results_or_200_ms(tmp_path) -> None:
    clock = FakeClock()
    ledger = Ledger(tmp_path / "ledger.sqlite", clock=clock)
    run = ledger.start_run({})
    for index in range(49):
        ledger.add_result(run, result(index))
    clock.now += 0.199
    assert not ledger.flush_due()
    ledger.add_result(run, result(49))
    assert ledger.flush_due()  # the 50th result
    ledger.flush()
    clock.now = 0.0
    ledger.add_result(run, result(50))
    clock.now = 0.199
    assert not ledger.flush_due()
    clock.now = 0.2
    assert ledger.flush_due()  # 200 ms after the first buffered
    ledger.close()
