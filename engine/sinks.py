"""Result outputs, written from the ledger (never from memory), replaced together and atomically.

``write_outputs`` writes, in one pass over the pages in the outputs (ordered by document, then page):

- ``results.jsonl``: one JSON record per page (see :func:`engine.output_record.page_record`), the
  record the ledger stored when the page was committed, written as it is;
- ``results.csv``: one row per page — document, page, status, one column per field name (in the
  order given, else in the order the names first appear), confidence (the mean of the page's
  field confidences), issues (their codes joined by "; ", or the error's type for a failed page);
- ``review.csv``: the pages with status review or failed — document, page, status, reasons;
- ``report.json``: the report passed in, plus totals counted from the ledger.

``write_xlsx`` writes the same table as a workbook (``pagemill export --format xlsx``).

Each file is written to a temporary file in the output folder; once all four are complete and
synced they are moved into place with ``os.replace``, so a reader sees the old files or the new
ones, never half of one (a full disk leaves the previous outputs as they were). A CSV cell that a
spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``, ``@``) gets a leading
``'``; numbers are written as they are. The JSONL file keeps every value unchanged.
"""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import IO, Any

from engine.errors import ConfigError
from engine.ledger_queries import LedgerReader, OUTPUT_COLUMNS, result_of
from engine.output_record import dumps, encode_record, mean_confidence, page_record, record_line
from engine.records import PageResult

OUTPUT_NAMES = ("results.jsonl", "results.csv", "review.csv", "report.json")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# the order write_outputs unpacks a row in
assert OUTPUT_COLUMNS[:14] == ("record", "fields", "issues", "confidence", "sha256", "page_index", "document",
                               "page_count", "status", "attempts", "error_class", "error_type", "error_message",
                               "error_stage")

__all__ = ["OUTPUT_NAMES", "atomic_file", "csv_cell", "page_record", "review_reasons", "write_outputs", "write_xlsx"]


class _Pending:
    """A file written under a temporary name next to ``path``, moved into place by ``commit``.

    The temporary file is created like any other (the umask applies), so the result has the usual
    permissions."""

    def __init__(self, path: Path, mode: str = "w") -> None:
        self.path = path
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        options: dict[str, Any] = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
        try:
            self.handle: IO[Any] = open(self.temporary, mode.replace("w", "x"), **options)
        except OSError as exc:  # named by the file the user asked for, not the temporary one
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None

    def finish(self) -> None:
        """Write out and sync the whole file (where a full disk shows)."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    def commit(self) -> None:
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        try:
            self.handle.close()
        except OSError:
            pass  # a buffer that cannot be written out: the file goes anyway
        self.temporary.unlink(missing_ok=True)


@contextmanager
def _replaced_together(paths: Sequence[Path]) -> Iterator[list[_Pending]]:
    """Temporary files for ``paths``; all moved into place once every one is complete, none if
    the block or any write raises."""
    pending: list[_Pending] = []
    try:
        for path in paths:
            pending.append(_Pending(path))
        yield pending
        for item in pending:
            item.finish()
    except BaseException:
        for item in pending:
            item.discard()
        raise
    for item in pending:
        item.commit()


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file that appears at ``path`` only once it is complete (temporary file + ``os.replace``);
    removed if the block raises."""
    item = _Pending(path, mode)
    try:
        yield item.handle
        item.finish()
    except BaseException:
        item.discard()
        raise
    item.commit()


def review_reasons(result: PageResult) -> str:
    """Why a page needs a person: its error, or its issues' messages (those of severity review
    first and only, when there are any)."""
    if result.error is not None:
        error = result.error
        where = f" in {error.stage}" if error.stage else ""
        return f"{error.error_class} error{where}: {error.one_line()}"
    issues = [i for i in result.issues if i.severity != "info"] or list(result.issues)
    return "; ".join(i.message for i in issues)


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: None empty, numbers as they are, formula-like text defused."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
    if text.startswith(FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _issues_cells(issues: str | None, error_class: str | None, error_type: str | None, error_message: str | None,
                  error_stage: str | None) -> tuple[str, str]:
    """The issues cell of results.csv (the issues' codes, or the error's type) and the reasons
    cell of review.csv (as :func:`review_reasons`), from a page's stored columns."""
    listed = json.loads(issues) if issues and issues != "[]" else []
    codes = "; ".join(i["code"] for i in listed)
    if error_class:
        where = f" in {error_stage}" if error_stage else ""
        reasons = f"{error_class} error{where}: {error_type}: {error_message}".replace("\n", " ")
        return codes or f"error: {error_type}", reasons
    shown = [i for i in listed if i.get("severity", "review") != "info"] or listed
    return codes, "; ".join(i["message"] for i in shown)


def column_order(ledger: LedgerReader, field_order: Sequence[str] | None = None) -> list[str]:
    """The field columns of results.csv: ``field_order`` first, then any other field found, in
    the order the names first appear."""
    found = ledger.field_names()
    if field_order is None:
        return found
    given = list(dict.fromkeys(field_order))
    return given + [name for name in found if name not in set(given)]


def write_outputs(ledger: LedgerReader, out_dir: Path, report: dict[str, Any],
                  field_order: Sequence[str] | None = None) -> dict[str, Path]:
    """Write results.jsonl, results.csv, review.csv and report.json from the pages in the outputs
    of the ledger; returns their paths by name. ``field_order`` fixes the first field columns of
    results.csv. An OSError (a full disk) leaves the previous files as they were."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in OUTPUT_NAMES}
    names = column_order(ledger, field_order)
    totals = {"pages": 0, "ok": 0, "review": 0, "failed": 0}
    by_class: dict[str, int] = {}
    by_type: dict[str, int] = {}
    with _replaced_together([paths[name] for name in OUTPUT_NAMES]) as (jsonl, results, review, report_file):
        write_line = jsonl.handle.write
        table = csv.writer(results.handle)
        queue = csv.writer(review.handle)
        table.writerow(["document", "page", "status", *names, "confidence", "issues"])
        queue.writerow(["document", "page", "status", "reasons"])
        for row in ledger.output_rows():
            (record, fields_text, issues, confidence, _sha, index, document, _count, status, _attempts, error_class,
             error_type, error_message, error_stage, *_rest) = row
            if record is None:  # a page committed before records were kept
                record = encode_record(result_of(dict(zip(OUTPUT_COLUMNS, row))))
            write_line(record_line(document, record))
            fields = json.loads(fields_text) if fields_text and fields_text != "{}" else {}
            issues_cell, reasons = _issues_cells(issues, error_class, error_type, error_message, error_stage)
            table.writerow([
                csv_cell(document), index + 1, status,
                *(csv_cell(fields[n]["value"]) if n in fields else "" for n in names),
                "" if confidence is None else round(confidence, 3),
                csv_cell(issues_cell),
            ])
            totals["pages"] += 1
            totals[status] = totals.get(status, 0) + 1
            if error_class:
                by_class[error_class] = by_class.get(error_class, 0) + 1
                by_type[error_type or ""] = by_type.get(error_type or "", 0) + 1
            if status != "ok":
                queue.writerow([csv_cell(document), index + 1, status, csv_cell(reasons)])
        merged = {**report, **totals, "errors_by_class": by_class, "errors_by_type": by_type}
        report_file.handle.write(dumps(merged, indent=2) + "\n")
    return paths


def typed_value(field_type: str, value: Any) -> Any:
    """A field's value as a spreadsheet cell: numbers as numbers, dates as dates, the rest as text."""
    if value is None:
        return None
    if field_type in ("number", "money", "weight"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value if math.isfinite(value) else None
        try:
            return float(str(value).replace(",", ""))
        except ValueError:
            return str(value)
    if field_type == "date":
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            return str(value)
    return str(value)


NUMBER_FORMATS = {"date": "yyyy-mm-dd", "money": "0.00"}  # how a field type's cells are shown


def write_xlsx(ledger: LedgerReader, path: Path, report: dict[str, Any] | None = None,
               field_order: Sequence[str] | None = None) -> Path:
    """Tickets (typed columns), Review (the reason per page) and Summary sheets, from the ledger.
    ``field_order`` fixes the first field columns, as in results.csv."""
    try:
        from openpyxl import Workbook
        from openpyxl.styles import Font
    except ImportError:
        raise ConfigError("XLSX export needs openpyxl: pip install 'pagemill[xlsx]'") from None
    names: dict[str, str] = dict.fromkeys(field_order or (), "")  # field name -> type
    for result in ledger.iter_results():
        for name, item in result.fields.items():
            if not names.get(name):
                names[name] = item.type
    book = Workbook()
    tickets = book.active
    tickets.title = "Tickets"
    tickets.append(["document", "page", "status", *names, "confidence"])
    review = book.create_sheet("Review")
    review.append(["document", "page", "status", "reasons"])
    totals = {"ok": 0, "review": 0, "failed": 0}
    for result in ledger.iter_results():
        totals[result.status] = totals.get(result.status, 0) + 1
        confidence = mean_confidence(result.fields)
        tickets.append([
            result.document, result.page, result.status,
            *(typed_value(kind, result.fields[n].value) if n in result.fields else None for n, kind in names.items()),
            None if confidence is None else round(confidence, 3),
        ])
        if result.status != "ok":
            review.append([result.document, result.page, result.status, review_reasons(result)])
    for column, kind in enumerate(names.values(), start=4):
        if kind in NUMBER_FORMATS:
            for row in tickets.iter_rows(min_row=2, min_col=column, max_col=column):
                row[0].number_format = NUMBER_FORMATS[kind]
    summary = book.create_sheet("Summary")
    summary.append(["measure", "value"])
    summary.append(["pages", sum(totals.values())])
    for status, count in totals.items():
        summary.append([f"pages {status}", count])
    for key in ("pages_per_second", "wall_seconds", "peak_workers"):
        if report and key in report:
            summary.append([key, report[key]])
    for sheet in (tickets, review, summary):
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as handle:
        book.save(handle)
    return path
