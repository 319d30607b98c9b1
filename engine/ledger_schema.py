"""The ledger's schema, its version, the look at an existing file, and the upgrades from versions 1 and 2.

Version 2 keeps history without letting it reach the outputs:

- ``runs.generation``: a run with ``--fresh`` starts a new generation; the outputs hold the pages of
  the latest generation only, earlier ones stay as history.
- ``pages.generation`` is part of the page's key (sha256, index, generation): a fresh run's page
  does not overwrite the earlier generation's row.
- ``documents.superseded_by``: when other content appears at a document's path, the older content's
  pages stay in the ledger but leave the outputs (the sha256 of the newer content is noted).
- ``pages.record``: the page's results.jsonl record, encoded once at commit; ``pages.field_names``
  its field names (tab-separated), so the CSV header needs no JSON decoding.
- ``attempts.note``: why an attempt's result is not in the ledger (taken back, see Ledger.forget).

Version 3 adds ``pages.delivered``: 0 from the commit of a page until it was handed on (the
``pagemill_page_done`` hooks, the sinks, the callback); a run that died in between (kill -9)
leaves 0, and the next run hands those pages on first. Pages of older ledgers count as delivered.

An older ledger is upgraded in one transaction when it is opened for writing; opened read-only it
is read through temporary views that supply the new columns.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.errors import LedgerError

APP = "pagemill"
LEDGER_NAME = "ledger.sqlite"
SQLITE_MAGIC = b"SQLite format 3\x00"
SCHEMA_VERSION = 3

PAGES_TABLE = """
CREATE TABLE pages (
    generation INTEGER NOT NULL DEFAULT 1, sha256 TEXT NOT NULL, page_index INTEGER NOT NULL,
    document TEXT NOT NULL, page_count INTEGER, status TEXT NOT NULL, attempts INTEGER NOT NULL, error_class TEXT,
    error_type TEXT, error_message TEXT, error_stage TEXT, stage_seconds TEXT, fields TEXT, issues TEXT,
    confidence REAL, text_source TEXT, run_id INTEGER NOT NULL, finished TEXT NOT NULL, record TEXT,
    field_names TEXT, delivered INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (sha256, page_index, generation))"""
INDEXES = """
CREATE INDEX pages_by_document ON pages (generation, document, page_index);
CREATE INDEX pages_by_run ON pages (run_id);
CREATE INDEX documents_by_path ON documents (path)"""

SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, finished TEXT, status TEXT NOT NULL,
    config TEXT NOT NULL, summary TEXT, generation INTEGER NOT NULL DEFAULT 1);
CREATE TABLE documents (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER, pages INTEGER, status TEXT NOT NULL,
    error_class TEXT, error_type TEXT, error_message TEXT, updated TEXT NOT NULL, superseded_by TEXT);
{PAGES_TABLE};
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, sha256 TEXT NOT NULL,
    page_index INTEGER NOT NULL, attempt INTEGER NOT NULL, error_class TEXT, error_type TEXT,
    error_message TEXT, seconds REAL, at TEXT NOT NULL, note TEXT);
{INDEXES};
"""

V1_PAGE_COLUMNS = ("sha256", "page_index", "document", "page_count", "status", "attempts", "error_class",
                   "error_type", "error_message", "error_stage", "stage_seconds", "fields", "issues", "confidence",
                   "text_source", "run_id", "finished")

# version 1 → 3 (the pages table is made anew, delivered); the older content at a path is the one recorded first
UPGRADE_FROM_1 = f"""
ALTER TABLE runs ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
ALTER TABLE documents ADD COLUMN superseded_by TEXT;
ALTER TABLE attempts ADD COLUMN note TEXT;
ALTER TABLE pages RENAME TO pages_v1;
DROP INDEX IF EXISTS pages_by_document;
{PAGES_TABLE};
INSERT INTO pages ({', '.join(V1_PAGE_COLUMNS)}) SELECT {', '.join(V1_PAGE_COLUMNS)} FROM pages_v1;
DROP TABLE pages_v1;
{INDEXES};
UPDATE documents SET superseded_by = (
    SELECT newer.sha256 FROM documents AS newer
    WHERE newer.path = documents.path AND newer.sha256 <> documents.sha256
    ORDER BY newer.updated DESC, newer.rowid DESC LIMIT 1)
WHERE EXISTS (
    SELECT 1 FROM documents AS newer
    WHERE newer.path = documents.path AND newer.sha256 <> documents.sha256
      AND (newer.updated > documents.updated OR (newer.updated = documents.updated AND newer.rowid > documents.rowid)))
"""

# version 2 → 3: the pages committed before count as handed on
UPGRADE_FROM_2 = "ALTER TABLE pages ADD COLUMN delivered INTEGER NOT NULL DEFAULT 1"

# an older ledger read without writing: the newer columns, supplied by views in the temp schema
READ_V1 = """
CREATE TEMP VIEW runs AS SELECT *, 1 AS generation FROM main.runs;
CREATE TEMP VIEW documents AS SELECT *, NULL AS superseded_by FROM main.documents;
CREATE TEMP VIEW pages AS SELECT 1 AS generation, *, NULL AS record, NULL AS field_names, 1 AS delivered
    FROM main.pages;
CREATE TEMP VIEW attempts AS SELECT *, NULL AS note FROM main.attempts
"""
READ_V2 = "CREATE TEMP VIEW pages AS SELECT *, 1 AS delivered FROM main.pages"


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.strip().split(";") if s.strip()]


def create(db: sqlite3.Connection, now: str) -> None:
    """The tables of a new ledger (inside the caller's transaction)."""
    for statement in statements(SCHEMA):
        db.execute(statement)
    db.executemany("INSERT INTO meta VALUES (?, ?)",
                   [("app", APP), ("schema_version", str(SCHEMA_VERSION)), ("created", now)])
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def upgrade(db: sqlite3.Connection, version: int, now: str) -> None:
    """Bring a ledger of an older version to this one (inside the caller's transaction)."""
    if version == 1:
        for statement in statements(UPGRADE_FROM_1):
            db.execute(statement)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('upgraded_from_1', ?)", (now,))
    elif version == 2:
        db.execute(UPGRADE_FROM_2)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('upgraded_from_2', ?)", (now,))
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def read_older(db: sqlite3.Connection, version: int) -> None:
    """Let a read-only connection to an older ledger be queried as this version."""
    if version == 1:
        for statement in statements(READ_V1):
            db.execute(statement)
    elif version == 2:
        db.execute(READ_V2)


def inspect(path: Path) -> int | None:
    """The schema version of an existing ledger, looked at read-only; None for a blank SQLite file
    (no table at all: a ledger whose creation was cut short). Refuses a file that is not a pagemill
    ledger, or one from a newer pagemill, with a :class:`LedgerError` naming it."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read the ledger ({exc})") from None
    if header != SQLITE_MAGIC:
        raise LedgerError(f"{path}: not a pagemill ledger (not an SQLite file); it was left as it is")
    not_ours = f"{path}: an SQLite file but not a pagemill ledger; it was left as it is"
    try:
        db = read_only_connection(path)
    except sqlite3.Error as exc:
        raise LedgerError(f"{path}: cannot read the ledger ({exc})") from None
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        user_version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if not tables and user_version == 0:
            return None
        if "meta" not in tables:
            raise LedgerError(not_ours)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error as exc:
        raise LedgerError(f"{path}: not a pagemill ledger ({exc}); it was left as it is") from None
    finally:
        db.close()
    if meta.get("app") != APP:
        raise LedgerError(not_ours)
    try:
        version = max(int(meta.get("schema_version", "0")), user_version)
    except ValueError:
        raise LedgerError(f"{path}: a pagemill ledger with a bad schema_version "
                          f"{meta.get('schema_version')!r}") from None
    if version > SCHEMA_VERSION:
        raise LedgerError(f"{path}: ledger schema version {version} is newer than this pagemill reads "
                          f"({SCHEMA_VERSION}); upgrade pagemill, or use another output folder")
    if version < 1:
        raise LedgerError(f"{path}: ledger schema version {version} is older than this pagemill reads "
                          f"and has no upgrade path; use another output folder")
    return version


def read_only_connection(path: Path) -> sqlite3.Connection:
    """A connection that cannot write the file. Without a WAL beside it the file is all there is,
    and ``immutable`` keeps SQLite from creating a -wal and -shm next to it."""
    wal = path.with_name(path.name + "-wal")
    options = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    return sqlite3.connect(f"{path.resolve().as_uri()}?{options}", uri=True, check_same_thread=False)
