"""What the outputs hold when the ledger keeps history: changed files, --fresh, a document that
failed whole and then opened, renamed files and copies; pages taken back; the upgrade from schema 1."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import noop_config
from loguru import logger

from engine.api import Engine
from engine.ledger import Ledger, open_existing
from engine.records import ErrorInfo, Field, Issue, PageResult
from engine.sinks import write_outputs
from plugins.noop import write_noop_document

SHA_A, SHA_B = "a" * 64, "b" * 64


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def pages_of(out: Path) -> list[tuple[str, int]]:
    return sorted((Path(r["document"]).name, r["page"]) for r in records(out))


@pytest.fixture
def log_lines():
    lines: list[str] = []
    handler = logger.add(lambda message: lines.append(str(message)), level="INFO", format="{message}")
    yield lines
    logger.remove(handler)


# ----------------------------------------------------------------------------- changed content
def test_a_changed_file_leaves_the_outputs_but_stays_in_the_ledger(noop_archive, tmp_path) -> None:
    archive = noop_archive([2, 3])
    out = tmp_path / "out"
    Engine(noop_config(out)).run(archive)
    old_sha = next(r["sha256"] for r in records(out) if r["document"].endswith("doc001.noop"))
    write_noop_document(archive / "doc001.noop", 1)  # the same path, other content, fewer pages
    summary = Engine(noop_config(out)).run(archive)
    assert pages_of(out) == [("doc000.noop", 1), ("doc000.noop", 2), ("doc001.noop", 1)]
    assert old_sha not in {r["sha256"] for r in records(out)}
    report = json.loads((out / "report.json").read_text())
    assert report["pages"] == 3 and summary.outputs_ok + summary.outputs_review == 3
    assert (out / "results.csv").read_text("utf-8-sig").count("doc001.noop") == 1
    with sqlite3.connect(out / "ledger.sqlite") as db:  # the audit trail keeps the old version
        assert db.execute("select count(*) from pages where sha256=?", (old_sha,)).fetchone()[0] == 3
        assert db.execute("select superseded_by from documents where sha256=?", (old_sha,)).fetchone()[0] is not None


def test_content_that_comes_back_at_its_path_is_current_again(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.start_run({})
    for sha in (SHA_A, SHA_B, SHA_A):  # a, then b at the same path, then a again
        ledger.record_document(sha, "/in/t.pdf", 10, 1, "ingested")
        ledger.add_result(run, PageResult("/in/t.pdf", sha, 1, 1, "ok"))
        ledger.flush()
    assert [r.sha256 for r in ledger.iter_results()] == [SHA_A]
    assert ledger.done_keys() == {(SHA_A, 0)}
    ledger.close()


# -------------------------------------------------------------------------------------- fresh
def test_fresh_keeps_earlier_pages_as_history_and_the_outputs_hold_only_the_new_start(noop_archive, tmp_path) -> None:
    archive = noop_archive([2, 3])
    out = tmp_path / "out"
    Engine(noop_config(out)).run(archive)
    only_first = [archive / "doc000.noop"]
    fresh = Engine(noop_config(out, fresh=True)).run(only_first)
    assert fresh.pages_skipped == 0 and fresh.outputs_ok + fresh.outputs_review == 2
    assert pages_of(out) == [("doc000.noop", 1), ("doc000.noop", 2)]
    with sqlite3.connect(out / "ledger.sqlite") as db:
        assert db.execute("select count(*) from pages").fetchone()[0] == 7  # 5 of the first start, 2 redone
    resumed = Engine(noop_config(out)).run(archive)  # continuing the fresh start
    assert resumed.pages_skipped == 2 and resumed.pages_ok + resumed.pages_review == 3
    assert len(pages_of(out)) == 5


# ------------------------------------------------------------------- a document that failed whole
def test_a_document_failure_is_superseded_once_its_pages_are_recorded(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    first = ledger.start_run({})
    error = ErrorInfo("permanent", "EncryptedDocumentError", "encrypted; pass --password", "ingest")
    ledger.record_document(SHA_A, "/in/locked.pdf", 10, None, "failed", error)
    ledger.add_result(first, PageResult("/in/locked.pdf", SHA_A, 0, 0, "failed", error=error))
    ledger.flush()
    assert ledger.counts()["failed"] == 1 and ledger.done_keys() == {(SHA_A, -1)}
    second = ledger.start_run({})
    ledger.record_document(SHA_A, "/in/locked.pdf", 10, 1, "ingested")
    ledger.add_result(second, PageResult("/in/locked.pdf", SHA_A, 1, 1, "ok"))
    ledger.flush()
    assert [(r.page, r.status) for r in ledger.iter_results()] == [(1, "ok")]
    assert ledger.counts() == {"ok": 1, "review": 0, "failed": 0, "pages": 1}
    assert ledger.done_keys() == {(SHA_A, 0)}
    assert ledger.counts(first)["failed"] == 1  # still in the ledger, for the audit trail
    ledger.close()


def test_an_encrypted_pdf_redone_with_its_password_is_no_longer_failed(tmp_path) -> None:
    from pdf_fixtures import encrypted_pdf, text_pdf

    from engine.config import EngineConfig

    archive = tmp_path / "archive"
    archive.mkdir()
    encrypted_pdf(text_pdf(tmp_path / "plain.pdf", ["Ticket No.: 555\nNet: 40,000 lb"]), archive / "locked.pdf", "pw")
    out = tmp_path / "out"
    config = EngineConfig(out_dir=str(out), workers="1")
    locked = Engine(config).run(archive)
    assert locked.status == "partial" and locked.exit_code == 1
    opened = Engine(config.replace(password="pw", retry_failed=True)).run(archive)
    assert [(r["page"], r["status"] != "failed") for r in records(out)] == [(1, True)]
    report = json.loads((out / "report.json").read_text())
    assert report["failed"] == 0 and report["status"] == "finished"
    assert opened.status == "finished" and opened.exit_code == 0 and opened.outputs_failed == 0


# ---------------------------------------------------------------------------- renamed and copies
def test_a_renamed_file_is_not_redone_and_takes_its_new_name(noop_archive, tmp_path, log_lines) -> None:
    archive = noop_archive([2, 1])
    out = tmp_path / "out"
    Engine(noop_config(out)).run(archive)
    (archive / "doc000.noop").rename(archive / "renamed.noop")
    again = Engine(noop_config(out)).run(archive)
    assert again.pages_skipped == 3 and again.pages_ok + again.pages_review == 0
    assert pages_of(out) == [("doc001.noop", 1), ("renamed.noop", 1), ("renamed.noop", 2)]
    with open_existing(out, read_only=True) as ledger:
        assert sorted(Path(p).name for p in ledger.document_paths().values()) == ["doc001.noop", "renamed.noop"]
    assert sum("renamed.noop" in line and "not redone" in line for line in log_lines) == 1


def test_an_identical_copy_is_done_once_said_once_and_keeps_the_first_name(noop_archive, tmp_path, log_lines) -> None:
    archive = noop_archive([2])
    shutil.copy(archive / "doc000.noop", archive / "zcopy.noop")
    out = tmp_path / "out"
    Engine(noop_config(out)).run(archive)
    Engine(noop_config(out)).run(archive)
    assert pages_of(out) == [("doc000.noop", 1), ("doc000.noop", 2)]
    said = [line for line in log_lines if "zcopy.noop" in line and "same content" in line]
    assert len(said) == 2  # once in each run


# ------------------------------------------------------------------------------- taking back
def test_forget_takes_pages_out_and_keeps_their_attempts_with_a_note(tmp_path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    run = ledger.start_run({})
    for index in range(3):
        ledger.add_attempt(run, SHA_A, index, 1, None, 0.1)
        ledger.add_result(run, PageResult("/in/a.pdf", SHA_A, index + 1, 3, "ok"))
    ledger.flush()
    assert ledger.forget(run, [(SHA_A, 1), (SHA_A, 2)]) == 2
    assert ledger.done_keys() == {(SHA_A, 0)}
    notes = ledger.db.execute("select page_index, note from attempts order by page_index").fetchall()
    assert notes[0] == (0, None) and [index for index, note in notes if note and "taken back" in note] == [1, 2]
    ledger.close()


# ------------------------------------------------------------------------- batching and records
def test_a_run_commits_every_50_results_or_200_ms() -> None:
    from engine.config import EngineConfig
    from engine.run_setup import open_ledger

    ledger = open_ledger(EngineConfig(out_dir=None))
    assert (ledger.batch_size, ledger.batch_seconds) == (50, 0.2)
    ledger.close()


def test_write_outputs_takes_an_explicit_field_order(tmp_path) -> None:
    with Ledger(None) as ledger:
        run = ledger.start_run({})
        fields = {name: Field(name, value, 0.9) for name, value in (("carrier", "Acme"), ("extra", "x"), ("date", "d"))}
        ledger.add_result(run, PageResult("/in/a.pdf", SHA_A, 1, 1, "ok", fields=fields))
        ledger.flush()
        paths = write_outputs(ledger, tmp_path, {}, field_order=["date", "net_lb", "carrier"])
        header = paths["results.csv"].read_text("utf-8-sig").splitlines()[0].split(",")
    assert header == ["document", "page", "status", "date", "net_lb", "carrier", "extra", "confidence", "issues"]


# ------------------------------------------------------------------------------ schema 1 upgrade
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, finished TEXT, status TEXT NOT NULL,
    config TEXT NOT NULL, summary TEXT);
CREATE TABLE documents (sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER, pages INTEGER, status TEXT NOT NULL,
    error_class TEXT, error_type TEXT, error_message TEXT, updated TEXT NOT NULL);
CREATE TABLE pages (sha256 TEXT NOT NULL, page_index INTEGER NOT NULL, document TEXT NOT NULL, page_count INTEGER,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, error_class TEXT, error_type TEXT, error_message TEXT,
    error_stage TEXT, stage_seconds TEXT, fields TEXT, issues TEXT, confidence REAL, text_source TEXT,
    run_id INTEGER NOT NULL, finished TEXT NOT NULL, PRIMARY KEY (sha256, page_index));
CREATE INDEX pages_by_document ON pages (document, page_index);
CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, sha256 TEXT NOT NULL,
    page_index INTEGER NOT NULL, attempt INTEGER NOT NULL, error_class TEXT, error_type TEXT,
    error_message TEXT, seconds REAL, at TEXT NOT NULL);
INSERT INTO meta VALUES ('app', 'pagemill'), ('schema_version', '1');
PRAGMA user_version=1;
INSERT INTO runs (started, finished, status, config) VALUES ('2026-01-01T00:00:00+00:00', NULL, 'running', '{"dpi": 300}');
INSERT INTO documents VALUES ('aaaa', '/in/t.pdf', 10, 2, 'ingested', NULL, NULL, NULL, '2026-01-01T00:00:00+00:00');
INSERT INTO documents VALUES ('bbbb', '/in/t.pdf', 10, 1, 'ingested', NULL, NULL, NULL, '2026-01-02T00:00:00+00:00');
INSERT INTO pages VALUES ('aaaa', 0, '/in/t.pdf', 2, 'ok', 1, NULL, NULL, NULL, NULL, '{}', '{}', '[]', NULL, '', 1, 'x');
INSERT INTO pages VALUES ('aaaa', 1, '/in/t.pdf', 2, 'ok', 1, NULL, NULL, NULL, NULL, '{}', '{}', '[]', NULL, '', 1, 'x');
INSERT INTO pages VALUES ('bbbb', 0, '/in/t.pdf', 1, 'review', 1, NULL, NULL, NULL, NULL, '{"ocr": 0.5}',
    '{"ticket": {"value": "T-1", "confidence": 0.9, "raw": "T-1", "type": "id"}}',
    '[{"code": "low", "message": "faint", "field": null, "severity": "review"}]', 0.9, 'rendered', 1, 'x');
"""


@pytest.fixture
def v1_ledger(tmp_path) -> Path:
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    db.executescript(V1_SCHEMA)
    db.close()
    return tmp_path


def test_a_schema_1_ledger_is_read_without_a_write_and_upgraded_when_written(v1_ledger) -> None:
    path = v1_ledger / "ledger.sqlite"
    before = path.read_bytes()
    with open_existing(v1_ledger, read_only=True) as reader:
        assert reader.runs()[0]["pages"]["pages"] == 3
        assert reader.counts()["pages"] == 3  # schema 1 knew nothing of superseded content
    assert path.read_bytes() == before
    with open_existing(v1_ledger) as ledger:
        assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == Ledger.SCHEMA_VERSION
        assert [(r.sha256, r.page) for r in ledger.iter_results()] == [("bbbb", 1)]  # aaaa: older at that path
        assert ledger.last_config() == {"dpi": 300}
        paths = write_outputs(ledger, v1_ledger, {})
    (record,) = records(v1_ledger)
    assert record["fields"] == {"ticket": {"value": "T-1", "confidence": 0.9, "raw": "T-1"}}
    assert record["issues"] == [{"code": "low", "message": "faint", "field": None}]
    assert paths["results.csv"].read_text("utf-8-sig").splitlines()[1].startswith("/in/t.pdf,1,review,T-1")


def test_a_later_run_on_a_schema_1_ledger_marks_its_killed_run_interrupted(v1_ledger, noop_archive) -> None:
    archive = noop_archive([1])
    Engine(noop_config(v1_ledger)).run(archive)
    with open_existing(v1_ledger, read_only=True) as ledger:
        assert [run["status"] for run in ledger.runs()] == ["interrupted", "finished"]


def test_issue_severity_survives_the_round_trip_into_review_reasons(tmp_path) -> None:
    with Ledger(None) as ledger:
        run = ledger.start_run({})
        issues = (Issue("faint", "faint print", None, "info"), Issue("net", "net is off", "net_lb"))
        ledger.add_result(run, PageResult("/in/a.pdf", SHA_A, 1, 1, "review", issues=issues))
        ledger.flush()
        paths = write_outputs(ledger, tmp_path, {})
    assert paths["review.csv"].read_text("utf-8-sig").splitlines()[1] == "/in/a.pdf,1,review,net is off"
