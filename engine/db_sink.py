"""``--sink sqlite:///path.db``: each finished ticket into a ``tickets`` table as the run goes.

A parent-side plugin (``pagemill_page_done``, ``pagemill_page_amended``). Rows are keyed by document hash and page, so
writing a page again replaces it: the table never holds a ticket twice. A field seen for the first
time gets its own column. When a run starts, pages the ledger holds but the table lacks (a run
killed between the two commits) are added first, so a resumed run leaves every ticket in the table.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from engine import hookimpl
from engine.errors import ConfigError
from engine.ledger import LEDGER_NAME, Ledger
from engine.records import PageResult

BASE_COLUMNS = ("sha256", "page", "document", "status", "confidence", "issues", "error")


def sink_from_url(url: str) -> SqliteSink:
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"unknown sink {url!r}: pagemill writes to sqlite:///path.db")
    return SqliteSink(Path(url[len("sqlite:///"):]))


class SqliteSink:
    name = "sqlite_sink"

    def __init__(self, path: Path) -> None:
        self.path = path
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(path, check_same_thread=False)
            db.execute(
                "CREATE TABLE IF NOT EXISTS tickets (sha256 TEXT NOT NULL, page INTEGER NOT NULL, document TEXT, "
                "status TEXT, confidence REAL, issues TEXT, error TEXT, PRIMARY KEY (sha256, page))"
            )
            self.columns = {row[1] for row in db.execute("PRAGMA table_info(tickets)")}
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            folder = "" if path.parent.is_dir() else f" (folder {path.parent} does not exist)"
            raise ConfigError(f"--sink sqlite:///{path}: cannot open {path}{folder}: {exc}") from None
        self.db = db

    def _column(self, name: str) -> str:
        column = "f_" + re.sub(r"[^0-9a-zA-Z_]", "_", name)
        if column not in self.columns:
            self.db.execute(f'ALTER TABLE tickets ADD COLUMN "{column}"')
            self.columns.add(column)
        return column

    def write(self, result: PageResult) -> None:
        confidences = [f.confidence for f in result.fields.values()]
        row: dict[str, Any] = {
            "sha256": result.sha256, "page": result.page, "document": result.document, "status": result.status,
            "confidence": round(min(confidences), 4) if confidences else None,
            "issues": json.dumps([i.code for i in result.issues]),
            "error": result.error.one_line() if result.error else None,
        }
        for name, item in result.fields.items():
            row[self._column(name)] = item.value
        names = ", ".join(f'"{k}"' for k in row)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"INSERT OR REPLACE INTO tickets ({names}) VALUES ({marks})", list(row.values()))

    @hookimpl
    def pagemill_run_started(self, run: dict[str, Any]) -> None:
        out_dir = run.get("out_dir")
        ledger_path = Path(out_dir) / LEDGER_NAME if out_dir else None
        if ledger_path is None or not ledger_path.exists():
            return

        have = set(self.db.execute("SELECT sha256, page FROM tickets"))
        ledger = Ledger(ledger_path)
        try:
            for result in ledger.iter_results():
                if (result.sha256, result.page) not in have:
                    self.write(result)
        finally:
            ledger.close()
        self.db.commit()

    @hookimpl
    def pagemill_page_done(self, result: PageResult) -> None:
        self.write(result)
        self.db.commit()

    @hookimpl
    def pagemill_page_amended(self, result: PageResult) -> None:
        self.pagemill_page_done(result)

    @hookimpl
    def pagemill_run_finished(self, summary: Any) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.close()
