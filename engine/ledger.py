"""The SQLite run ledger: runs, documents, pages, attempts; what makes a run resumable.

WAL mode, one file per output folder (``DIR/ledger.sqlite``). A page is known by its document's
sha256 and its index (UNIQUE), so a page is never stored twice: a result for a key already stored
replaces it (a failed page redone). Results are buffered and committed in batches (``batch_size``
results or ``batch_seconds`` after the first buffered one); only what ``flush()`` returns is done.
``synchronous=NORMAL`` in WAL mode: a commit survives a killed process (the WAL is written before
``flush`` returns); only a power loss may roll back the last batches, which are then redone.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from engine.errors import LedgerError
from engine.records import ErrorInfo, Field, Issue, PageResult

APP = "pagemill"
LEDGER_NAME = "ledger.sqlite"
SQLITE_MAGIC = b"SQLite format 3\x00"

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, finished TEXT, status TEXT NOT NULL,
    config TEXT NOT NULL, summary TEXT);
CREATE TABLE documents (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER, pages INTEGER, status TEXT NOT NULL,
    error_class TEXT, error_type TEXT, error_message TEXT, updated TEXT NOT NULL);
CREATE TABLE pages (
    sha256 TEXT NOT NULL, page_index INTEGER NOT NULL, document TEXT NOT NULL, page_count INTEGER,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, error_class TEXT, error_type TEXT, error_message TEXT,
    error_stage TEXT, stage_seconds TEXT, fields TEXT, issues TEXT, confidence REAL, text_source TEXT,
    run_id INTEGER NOT NULL, finished TEXT NOT NULL, PRIMARY KEY (sha256, page_index));
CREATE INDEX pages_by_document ON pages (document, page_index);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, sha256 TEXT NOT NULL,
    page_index INTEGER NOT NULL, attempt INTEGER NOT NULL, error_class TEXT, error_type TEXT,
    error_message TEXT, seconds REAL, at TEXT NOT NULL);
"""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ledger:
    SCHEMA_VERSION = 1

    def __init__(self, path: str | Path | None, batch_size: int = 50, batch_seconds: float = 0.2) -> None:
        self.path = Path(path) if path is not None else None
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self._results: list[tuple[int, PageResult]] = []
        self._attempts: list[tuple[Any, ...]] = []
        self._first_buffered = 0.0
        existed = self.path is not None and self.path.exists() and self.path.stat().st_size > 0
        if existed:
            self._check_header()
        try:
            # one thread at a time uses a ledger, but not always the one that opened it (Engine.submit)
            self.db = sqlite3.connect(
                str(self.path) if self.path else ":memory:", isolation_level=None, check_same_thread=False
            )
            if existed:
                self._check_schema()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            if not existed:
                self._create()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: not a pagemill ledger ({exc})") from None

    # ------------------------------------------------------------------ schema
    def _check_header(self) -> None:
        assert self.path is not None
        with open(self.path, "rb") as handle:
            if handle.read(16) != SQLITE_MAGIC:
                raise LedgerError(f"{self.path}: not a pagemill ledger (not an SQLite file); it was left as it is")

    def _check_schema(self) -> None:
        try:
            rows = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            self.db.close()
            raise LedgerError(f"{self.path}: an SQLite file but not a pagemill ledger; it was left as it is") from None
        if rows.get("app") != APP:
            self.db.close()
            raise LedgerError(f"{self.path}: an SQLite file but not a pagemill ledger; it was left as it is")
        version = int(rows.get("schema_version", 0))
        if version > self.SCHEMA_VERSION:
            self.db.close()
            raise LedgerError(
                f"{self.path}: ledger schema version {version} is newer than this pagemill understands "
                f"({self.SCHEMA_VERSION}); upgrade pagemill"
            )

    def _create(self) -> None:
        with self._transaction():
            for statement in SCHEMA.strip().split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.execute("INSERT INTO meta VALUES ('app', ?), ('schema_version', ?)", (APP, str(self.SCHEMA_VERSION)))
            self.db.execute(f"PRAGMA user_version={self.SCHEMA_VERSION}")

    def _transaction(self) -> Any:
        db = self.db

        class Transaction:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind: Any, *rest: Any) -> None:
                db.execute("ROLLBACK" if kind else "COMMIT")

        return Transaction()

    # -------------------------------------------------------------------- runs
    def start_run(self, config_snapshot: dict[str, Any]) -> int:
        with self._transaction():
            cursor = self.db.execute(
                "INSERT INTO runs (started, status, config) VALUES (?, 'running', ?)",
                (utc_now(), json.dumps(config_snapshot, default=str)),
            )
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        self.flush()
        with self._transaction():
            self.db.execute("UPDATE runs SET finished=?, status=?, summary=? WHERE id=?",
                            (utc_now(), status, json.dumps(summary, default=str), run_id))

    def runs(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT id, started, finished, status, summary FROM runs ORDER BY id").fetchall()
        return [{"id": r[0], "started": r[1], "finished": r[2], "status": r[3], "summary": json.loads(r[4] or "{}")}
                for r in rows]

    def last_config(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT config FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return json.loads(row[0]) if row else None

    def counts(self, run_id: int | None = None) -> dict[str, int]:
        query = "SELECT status, count(*) FROM pages" + (" WHERE run_id=?" if run_id is not None else "") + " GROUP BY status"
        found = dict(self.db.execute(query, (run_id,) if run_id is not None else ()).fetchall())
        counts = {status: int(found.get(status, 0)) for status in ("ok", "review", "failed")}
        counts["pages"] = sum(counts.values())
        return counts

    # --------------------------------------------------------------- documents
    def record_document(self, sha256: str, path: str, size: int, pages: int | None, status: str,
                        error: ErrorInfo | None = None) -> None:
        self.db.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(sha256) DO UPDATE SET path=excluded.path, "
            "size=excluded.size, pages=coalesce(excluded.pages, documents.pages), status=excluded.status, "
            "error_class=excluded.error_class, error_type=excluded.error_type, error_message=excluded.error_message, "
            "updated=excluded.updated",
            (sha256, path, size, pages, status, error.error_class if error else None, error.type if error else None,
             error.message if error else None, utc_now()),
        )

    def document_pages(self) -> dict[str, int]:
        return {sha: pages for sha, pages in self.db.execute("SELECT sha256, pages FROM documents WHERE pages IS NOT NULL")}

    # ------------------------------------------------------------------- pages
    def done_keys(self, include_failed: bool = True) -> set[tuple[str, int]]:
        statuses = ("ok", "review", "failed") if include_failed else ("ok", "review")
        marks = ",".join("?" for _ in statuses)
        return {(sha, index) for sha, index in
                self.db.execute(f"SELECT sha256, page_index FROM pages WHERE status IN ({marks})", statuses)}

    def add_result(self, run_id: int, result: PageResult) -> None:
        if not self._results and not self._attempts:
            self._first_buffered = time.monotonic()
        self._results.append((run_id, result))

    def add_attempt(self, run_id: int, sha256: str, page_index: int, attempt: int, error: ErrorInfo | None,
                    seconds: float) -> None:
        if not self._results and not self._attempts:
            self._first_buffered = time.monotonic()
        self._attempts.append((run_id, sha256, page_index, attempt, error.error_class if error else None,
                               error.type if error else None, error.message if error else None, seconds, utc_now()))

    def flush_due(self) -> bool:
        if not self._results and not self._attempts:
            return False
        return len(self._results) >= self.batch_size or time.monotonic() - self._first_buffered >= self.batch_seconds

    def flush(self) -> list[PageResult]:
        if not self._results and not self._attempts:
            return []
        results, attempts = self._results, self._attempts
        now = utc_now()
        with self._transaction():
            self.db.executemany(
                "INSERT INTO attempts (run_id, sha256, page_index, attempt, error_class, error_type, error_message, "
                "seconds, at) VALUES (?,?,?,?,?,?,?,?,?)", attempts)
            self.db.executemany(
                "INSERT OR REPLACE INTO pages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [_page_row(run_id, result, now) for run_id, result in results])
        self._results, self._attempts = [], []
        return [result for _, result in results]

    def iter_results(self, run_id: int | None = None) -> Iterator[PageResult]:
        query = "SELECT * FROM pages" + (" WHERE run_id=?" if run_id is not None else "") + " ORDER BY document, page_index"
        cursor = self.db.execute(query, (run_id,) if run_id is not None else ())
        names = [column[0] for column in cursor.description]
        for row in cursor:
            yield _result_of(dict(zip(names, row)))

    def field_names(self) -> list[str]:
        """Every field name stored, in the order they first appeared."""
        rows = self.db.execute(
            "SELECT key FROM (SELECT j.key AS key, min(p.rowid) AS first FROM pages AS p, json_each(p.fields) AS j "
            "GROUP BY j.key) ORDER BY first"
        )
        return [name for (name,) in rows]

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()


def open_existing(out_dir: Path) -> Ledger:
    path = Path(out_dir) / LEDGER_NAME
    if not path.is_file():
        raise LedgerError(f"{out_dir}: no pagemill ledger here ({LEDGER_NAME} not found)")
    return Ledger(path)


def _page_row(run_id: int, result: PageResult, now: str) -> tuple[Any, ...]:
    error = result.error
    confidences = [f.confidence for f in result.fields.values()]
    return (
        result.sha256, result.page - 1, result.document, result.page_count, result.status, result.attempts,
        error.error_class if error else None, error.type if error else None, error.message if error else None,
        error.stage if error else None, json.dumps(result.stage_seconds),
        json.dumps({n: {"value": f.value, "confidence": f.confidence, "raw": f.raw, "type": f.type}
                    for n, f in result.fields.items()}, default=str),
        json.dumps([{"code": i.code, "message": i.message, "field": i.field, "severity": i.severity}
                    for i in result.issues]),
        round(sum(confidences) / len(confidences), 4) if confidences else None, result.text_source, run_id, now,
    )


def _result_of(row: dict[str, Any]) -> PageResult:
    fields = {n: Field(n, f["value"], f["confidence"], f.get("raw", ""), f.get("type", "text"))
              for n, f in json.loads(row["fields"] or "{}").items()}
    issues = tuple(Issue(i["code"], i["message"], i.get("field"), i.get("severity", "review"))
                   for i in json.loads(row["issues"] or "[]"))
    error = None
    if row["error_class"]:
        error = ErrorInfo(row["error_class"], row["error_type"] or "", row["error_message"] or "", row["error_stage"] or "")
    return PageResult(
        document=row["document"], sha256=row["sha256"], page=row["page_index"] + 1, page_count=row["page_count"] or 0,
        status=row["status"], fields=fields, issues=issues, error=error,
        stage_seconds=json.loads(row["stage_seconds"] or "{}"), text_source=row["text_source"] or "",
        attempts=row["attempts"],
    )
