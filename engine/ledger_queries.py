"""The read side of the ledger: runs, counts, the pages in the outputs, and read-only opening.

The pages "in the outputs" (``CURRENT``) are those of the latest generation (a ``--fresh`` run starts
a new one), whose document is not superseded by newer content at its path, leaving out a whole
document's failure (index -1) once pages of that document are recorded. Everything else stays in
the ledger as history and counts for the run that committed it (``counts(run_id)``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from engine.errors import LedgerError, NoLedgerError
from engine.ledger_schema import LEDGER_NAME, SCHEMA_VERSION, inspect, read_older, read_only_connection
from engine.records import ErrorInfo, Field, Issue, PageResult

PAGE_COLUMNS = ("sha256", "page_index", "document", "page_count", "status", "attempts", "error_class", "error_type",
                "error_message", "error_stage", "stage_seconds", "fields", "issues", "confidence", "text_source",
                "run_id", "finished")
STATUSES = ("ok", "review", "failed")

GENERATION = "(SELECT coalesce(max(generation), 1) FROM runs)"
CURRENT = f"""
FROM pages AS p
WHERE p.generation = {GENERATION}
  AND NOT EXISTS (SELECT 1 FROM documents AS d WHERE d.sha256 = p.sha256 AND d.superseded_by IS NOT NULL)
  AND (p.page_index >= 0 OR NOT EXISTS (
       SELECT 1 FROM pages AS q WHERE q.generation = p.generation AND q.sha256 = p.sha256 AND q.page_index >= 0))"""
ORDER = " ORDER BY p.document, p.page_index"

# what the outputs need of a page, in one row (see engine.sinks.write_outputs)
OUTPUT_COLUMNS = ("record", "fields", "issues", "confidence") + tuple(
    c for c in PAGE_COLUMNS if c not in ("fields", "issues", "confidence"))


class LedgerReader:
    """Queries on an open ledger connection (``self.db``); the writer, :class:`engine.ledger.Ledger`,
    adds the writing side."""

    path: Path | None
    db: sqlite3.Connection

    # -------------------------------------------------------------------- runs
    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first, with the pages it committed by status (``pages``)."""
        committed: dict[int, dict[str, int]] = {}
        for run_id, status, count in self.db.execute("SELECT run_id, status, count(*) FROM pages GROUP BY run_id, status"):
            committed.setdefault(run_id, dict.fromkeys(STATUSES, 0))[status] = count
        rows = self.db.execute("SELECT id, started, finished, status, summary, generation FROM runs ORDER BY id")
        runs = []
        for run_id, started, finished, status, summary, generation in rows:
            pages = committed.get(run_id, dict.fromkeys(STATUSES, 0))
            runs.append({"id": run_id, "started": started, "finished": finished, "status": status,
                         "summary": json.loads(summary or "{}"), "generation": generation,
                         "pages": {**pages, "pages": sum(pages.values())}})
        return runs

    def last_config(self) -> dict[str, Any] | None:
        """The settings of the latest run, to continue it: without ``fresh``, since continuing a
        fresh run means keeping what it did."""
        row = self.db.execute("SELECT config FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        if not row:
            return None
        config = json.loads(row[0])
        config.pop("fresh", None)
        return config

    def generation(self) -> int:
        """The generation the outputs show (that of the latest run)."""
        return int(self.db.execute(f"SELECT {GENERATION}").fetchone()[0])

    def counts(self, run_id: int | None = None, in_outputs: bool = False) -> dict[str, int]:
        """Pages by status (ok, review, failed) and in all (pages): those in the outputs, or those a
        run committed (``run_id``) whether or not later history superseded them; with
        ``in_outputs`` too, those of the run that the outputs still hold."""
        if run_id is not None and in_outputs:
            rows = self.db.execute(f"SELECT p.status, count(*) {CURRENT} AND p.run_id=? GROUP BY p.status", (run_id,))
        elif run_id is not None:
            rows = self.db.execute("SELECT status, count(*) FROM pages WHERE run_id=? GROUP BY status", (run_id,))
        else:
            rows = self.db.execute(f"SELECT p.status, count(*) {CURRENT} GROUP BY p.status")
        found = dict(rows.fetchall())
        counts = {status: int(found.get(status, 0)) for status in STATUSES}
        counts["pages"] = sum(counts.values())
        return counts

    # --------------------------------------------------------------- documents
    def documents_in_outputs(self) -> int:
        """How many documents (distinct contents) the pages in the outputs come from."""
        return int(self.db.execute(f"SELECT count(DISTINCT p.sha256) {CURRENT}").fetchone()[0])

    def document_pages(self) -> dict[str, int]:
        """sha256 → page count, for every current document whose pages were counted."""
        rows = self.db.execute("SELECT sha256, pages FROM documents WHERE pages IS NOT NULL AND superseded_by IS NULL")
        return {sha: pages for sha, pages in rows}

    def document_paths(self) -> dict[str, str]:
        """sha256 → the path it was last seen at, for every current document."""
        return dict(self.db.execute("SELECT sha256, path FROM documents WHERE superseded_by IS NULL").fetchall())

    # ------------------------------------------------------------------- pages
    def done_keys(self, include_failed: bool = True) -> set[tuple[str, int]]:
        """Keys (sha256, page index) of the pages in the outputs: ok and review, and failed if asked."""
        statuses = STATUSES if include_failed else ("ok", "review")
        marks = ",".join("?" for _ in statuses)
        shared: dict[str, str] = {}  # one string per document, not one per page
        return {(shared.setdefault(sha, sha), index) for sha, index in
                self.db.execute(f"SELECT p.sha256, p.page_index {CURRENT} AND p.status IN ({marks})", statuses)}

    def iter_results(self, run_id: int | None = None) -> Iterator[PageResult]:
        """The pages in the outputs (or those of one run still in them), ordered by document path
        then page, read from a cursor as they go."""
        where, parameters = (" AND p.run_id=?", (run_id,)) if run_id is not None else ("", ())
        columns = ", ".join(f"p.{c}" for c in PAGE_COLUMNS)
        cursor = self.db.execute(f"SELECT {columns} {CURRENT}{where}{ORDER}", parameters)
        try:
            for row in cursor:
                yield result_of(dict(zip(PAGE_COLUMNS, row)))
        finally:
            cursor.close()

    def undelivered(self) -> list[PageResult]:
        """The pages in the outputs committed but never handed on (the run died in between), in
        output order."""
        columns = ", ".join(f"p.{c}" for c in PAGE_COLUMNS)
        rows = self.db.execute(f"SELECT {columns} {CURRENT} AND p.delivered=0{ORDER}").fetchall()
        return [result_of(dict(zip(PAGE_COLUMNS, row))) for row in rows]

    def output_rows(self) -> Iterator[tuple[Any, ...]]:
        """The pages in the outputs as raw rows of ``OUTPUT_COLUMNS``, in output order: what
        writing the outputs needs, without building a PageResult per page."""
        cursor = self.db.execute(f"SELECT {', '.join(f'p.{c}' for c in OUTPUT_COLUMNS)} {CURRENT}{ORDER}")
        try:
            yield from cursor
        finally:
            cursor.close()

    def field_names(self) -> list[str]:
        """Every field name in the outputs, in the order they first appear in ``iter_results()``."""
        names: dict[str, None] = {}
        seen: set[str] = set()
        for text, fields in self.db.execute(f"SELECT p.field_names, p.fields {CURRENT}{ORDER}"):
            if text is None:  # a page committed before field names were kept
                names.update(dict.fromkeys(json.loads(fields or "{}")))
            elif text not in seen:
                seen.add(text)
                names.update(dict.fromkeys(text.split("\t") if text else ()))
        return list(names)

    # ----------------------------------------------------------------- closing
    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReadOnlyLedger(LedgerReader):
    """An existing ledger opened so that nothing can be written to it (status, runs, export),
    also while a run is writing it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        version = inspect(path)
        if version is None:
            raise NoLedgerError(f"{path}: an empty ledger, no run recorded yet")
        try:
            self.db = read_only_connection(path)
            self.db.execute("PRAGMA busy_timeout=10000")
            if version < SCHEMA_VERSION:
                read_older(self.db, version)
        except sqlite3.Error as exc:
            raise LedgerError(f"{path}: cannot read the ledger ({exc})") from None


def ledger_path(out_dir: str | Path) -> Path:
    """The ledger of an output folder that must already have one; :class:`NoLedgerError` if not."""
    path = Path(out_dir) / LEDGER_NAME
    if not path.is_file():
        raise NoLedgerError(f"{out_dir}: no pagemill ledger here ({LEDGER_NAME} not found)")
    if path.stat().st_size == 0:
        raise NoLedgerError(f"{out_dir}: no pagemill ledger here ({LEDGER_NAME} is empty)")
    return path


def result_of(row: dict[str, Any]) -> PageResult:
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
