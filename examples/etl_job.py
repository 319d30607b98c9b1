"""An ETL job that embeds pagemill: scanned tickets in, a SQLite table and a CSV file out.

    python examples/etl_job.py [ARCHIVE] [--work DIR] [--pages N]

Without ARCHIVE it generates a small sample archive first. Each finished page streams out of
``Engine.process`` and is loaded at once with an upsert keyed on (document hash, page). A page
loaded before that a later page changes (a repeated ticket number sends both to review) comes
again through ``on_page_amended`` and is upserted over its row, so the table always says what
the outputs say. Rerun the job after a crash or Ctrl-C and it resumes: pages done before are not
redone, and the tickets the ledger committed but the table missed are loaded from the ledger
first. No ticket twice, none lost.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
from pathlib import Path

from engine import Engine, EngineConfig, PageResult
from engine.ledger import LEDGER_NAME, open_existing
from engine.sample import generate_sample

COLUMNS = ["ticket_number", "date", "time", "truck", "carrier", "job", "material", "gross_lb", "tare_lb", "net_lb",
           "net_tons"]


def open_table(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS tickets (sha256 TEXT, page INTEGER, document TEXT, status TEXT, "
               + ", ".join(f"{name} TEXT" for name in COLUMNS) + ", PRIMARY KEY (sha256, page))")
    return db


def load(db: sqlite3.Connection, result: PageResult) -> bool:
    """Upsert one ticket (a failed page has none); True when loaded."""
    if result.status == "failed":
        return False
    values = [result.fields[name].value if name in result.fields else None for name in COLUMNS]
    db.execute(
        f"INSERT INTO tickets VALUES (?, ?, ?, ?, {', '.join('?' for _ in COLUMNS)}) ON CONFLICT (sha256, page) "
        f"DO UPDATE SET {', '.join(f'{name} = excluded.{name}' for name in ['document', 'status', *COLUMNS])}",
        [result.sha256, result.page, result.document, result.status, *values],
    )
    return True


def count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM tickets").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description="load scanned tickets into SQLite and CSV")
    parser.add_argument("archive", nargs="?", help="a folder of scanned tickets (default: a generated sample)")
    parser.add_argument("--work", default="etl-work", help="where the ledger, the database and the CSV go")
    parser.add_argument("--pages", type=int, default=6, help="pages of the generated sample")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    archive = Path(args.archive) if args.archive else generate_sample(work / "sample", args.pages, broken=False).truth_path.parent / "scans"
    out = work / "pagemill-out"
    db = open_table(work / "tickets.db")

    recovered = 0
    if (out / LEDGER_NAME).exists():  # a rerun: first what the ledger holds, in case a crash lost a row
        before = count(db)
        with open_existing(out, read_only=True) as ledger:
            for result in ledger.iter_results():
                load(db, result)
        db.commit()
        recovered = count(db) - before
    loaded = 0

    def amended(result: PageResult) -> None:  # called in this thread, within the loop below
        load(db, result)
        db.commit()

    try:
        with Engine(EngineConfig(out_dir=str(out), workers="auto"), on_page_amended=amended) as engine:
            for result in engine.process(archive):
                if load(db, result):
                    loaded += 1
                else:
                    print(f"skipped {result.where()}: {result.error.one_line() if result.error else ''}", file=sys.stderr)
                db.commit()
    except KeyboardInterrupt:
        print(f"interrupted after {loaded} tickets; run the same command again to go on", file=sys.stderr)
        return 130

    rows = db.execute(f"SELECT document, page, status, {', '.join(COLUMNS)} FROM tickets ORDER BY document, page")
    with open(work / "tickets.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["document", "page", "status", *COLUMNS])
        writer.writerows(rows)
    print(f"loaded {loaded} tickets this run ({recovered} recovered from the ledger); "
          f"{count(db)} in {work / 'tickets.db'} and {work / 'tickets.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
