"""An ETL job that embeds pagemill: scanned tickets in, a SQLite table and a CSV file out.

    python examples/etl_job.py [ARCHIVE] [--work DIR] [--pages N]

Without ARCHIVE it generates a small sample archive first. Each finished page streams out of
``Engine.process`` and is loaded at once; rerunning the job resumes where it stopped, and the
``INSERT OR REPLACE`` on (document hash, page) keeps every ticket once.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
from pathlib import Path

from engine import Engine, EngineConfig
from engine.sample import generate_sample

COLUMNS = ["ticket_number", "date", "time", "truck", "carrier", "job", "material", "gross_lb", "tare_lb", "net_lb",
           "net_tons"]


def main() -> int:
    parser = argparse.ArgumentParser(description="load scanned tickets into SQLite and CSV")
    parser.add_argument("archive", nargs="?", help="a folder of scanned tickets (default: a generated sample)")
    parser.add_argument("--work", default="etl-work", help="where the ledger, the database and the CSV go")
    parser.add_argument("--pages", type=int, default=6, help="pages of the generated sample")
    args = parser.parse_args()
    work = Path(args.work)
    archive = Path(args.archive) if args.archive else generate_sample(work / "sample", args.pages, broken=False).truth_path.parent / "scans"

    db = sqlite3.connect(work / "tickets.db")
    db.execute(
        "CREATE TABLE IF NOT EXISTS tickets (sha256 TEXT, page INTEGER, document TEXT, status TEXT, "
        + ", ".join(f"{name} TEXT" for name in COLUMNS) + ", PRIMARY KEY (sha256, page))"
    )
    config = EngineConfig(out_dir=str(work / "pagemill-out"), workers="auto")
    loaded = 0
    with Engine(config) as engine:
        for result in engine.process(archive):
            if result.status == "failed":
                print(f"skipped {result.where()}: {result.error.one_line() if result.error else ''}", file=sys.stderr)
                continue
            values = [result.fields[name].value if name in result.fields else None for name in COLUMNS]
            db.execute(
                f"INSERT OR REPLACE INTO tickets VALUES (?, ?, ?, ?, {', '.join('?' for _ in COLUMNS)})",
                [result.sha256, result.page, result.document, result.status, *values],
            )
            db.commit()
            loaded += 1
    rows = db.execute(f"SELECT document, page, status, {', '.join(COLUMNS)} FROM tickets ORDER BY document, page")
    with open(work / "tickets.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["document", "page", "status", *COLUMNS])
        writer.writerows(rows)
    total = db.execute("SELECT count(*) FROM tickets").fetchone()[0]
    print(f"loaded {loaded} tickets this run; {total} in {work / 'tickets.db'} and {work / 'tickets.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
