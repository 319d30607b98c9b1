"""Result outputs, written from the ledger (never from memory), each file replaced atomically:
``results.jsonl``, ``results.csv``, ``review.csv``, ``report.json``, and ``results.xlsx`` on export."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Iterator, TextIO

from engine.errors import ConfigError
from engine.ledger import Ledger
from engine.records import PageResult


@contextmanager
def atomic_text(path: Path) -> Iterator[TextIO]:
    """Write to a temporary file beside ``path`` and move it into place: no reader sees half a file."""
    with _atomic(path, "w", encoding="utf-8", newline="") as handle:
        yield handle


@contextmanager
def atomic_bytes(path: Path) -> Iterator[Any]:
    with _atomic(path, "wb") as handle:
        yield handle


@contextmanager
def _atomic(path: Path, mode: str, **options: Any) -> Iterator[Any]:
    handle = tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f".{path.name}.", delete=False, **options)
    try:
        with handle:
            yield handle
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def page_record(result: PageResult) -> dict[str, Any]:
    error = result.error
    return {
        "document": result.document,
        "sha256": result.sha256,
        "page": result.page,
        "status": result.status,
        "fields": {n: {"value": f.value, "confidence": round(f.confidence, 4), "raw": f.raw}
                   for n, f in result.fields.items()},
        "issues": [{"code": i.code, "message": i.message, "field": i.field} for i in result.issues],
        "error": {"class": error.error_class, "type": error.type, "message": error.message, "stage": error.stage}
        if error else None,
        "stage_seconds": {k: round(v, 4) for k, v in result.stage_seconds.items()},
        "attempts": result.attempts,
        "text_source": result.text_source,
    }


def review_reasons(result: PageResult) -> str:
    if result.error is not None:
        return f"{result.error.error_class} error: {result.error.one_line()}"
    return "; ".join(issue.message for issue in result.issues)


def write_outputs(ledger: Ledger, out_dir: Path, report: dict[str, Any]) -> dict[str, Path]:
    """All four files in one pass over the ledger (the CSV's columns come from one query first)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("results.jsonl", "results.csv", "review.csv", "report.json")}
    names = ledger.field_names()
    totals = {"pages": 0, "ok": 0, "review": 0, "failed": 0}
    by_class: dict[str, int] = {}
    by_type: dict[str, int] = {}
    with atomic_text(paths["results.jsonl"]) as jsonl, atomic_text(paths["review.csv"]) as review_file, \
            atomic_text(paths["results.csv"]) as csv_file:
        review = csv.writer(review_file)
        review.writerow(["document", "page", "status", "reasons"])
        table = csv.writer(csv_file)
        table.writerow(["document", "page", "status", *names, "confidence", "issues"])
        for result in ledger.iter_results():
            jsonl.write(json.dumps(page_record(result), default=str) + "\n")
            confidences = [f.confidence for f in result.fields.values()]
            table.writerow([
                result.document, result.page, result.status,
                *(result.fields[n].value if n in result.fields else "" for n in names),
                round(min(confidences), 3) if confidences else "",
                "; ".join(i.code for i in result.issues) or (result.error.type if result.error else ""),
            ])
            totals["pages"] += 1
            totals[result.status] += 1
            if result.error is not None:
                by_class[result.error.error_class] = by_class.get(result.error.error_class, 0) + 1
                by_type[result.error.type] = by_type.get(result.error.type, 0) + 1
            if result.status != "ok":
                review.writerow([result.document, result.page, result.status, review_reasons(result)])
    with atomic_text(paths["report.json"]) as report_file:
        json.dump({**report, **totals, "errors_by_class": by_class, "errors_by_type": by_type}, report_file,
                  indent=2, default=str)
    return paths


def typed_value(field_type: str, value: Any) -> Any:
    """A field's value as a spreadsheet cell: numbers as numbers, dates as dates, the rest as text."""
    if value is None:
        return None
    if field_type in ("number", "money", "weight"):
        try:
            return float(value) if not isinstance(value, int) else value
        except (TypeError, ValueError):
            return str(value)
    if field_type == "date":
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            return str(value)
    return str(value)


def write_xlsx(ledger: Ledger, path: Path, report: dict[str, Any] | None = None) -> Path:
    """Tickets (typed columns), Review (the reason per page) and Summary sheets, from the ledger."""
    try:
        from openpyxl import Workbook
        from openpyxl.styles import Font
    except ImportError:
        raise ConfigError("XLSX export needs openpyxl: pip install 'pagemill[xlsx]'") from None
    names: dict[str, str] = {}  # field name -> type, in order of first appearance
    for result in ledger.iter_results():
        for name, item in result.fields.items():
            names.setdefault(name, item.type)
    book = Workbook()
    tickets = book.active
    tickets.title = "Tickets"
    tickets.append(["document", "page", "status", *names, "confidence"])
    review = book.create_sheet("Review")
    review.append(["document", "page", "status", "reasons"])
    totals = {"ok": 0, "review": 0, "failed": 0}
    for result in ledger.iter_results():
        totals[result.status] += 1
        confidences = [f.confidence for f in result.fields.values()]
        tickets.append([
            result.document, result.page, result.status,
            *(typed_value(kind, result.fields[n].value) if n in result.fields else None for n, kind in names.items()),
            round(min(confidences), 3) if confidences else None,
        ])
        if result.status != "ok":
            review.append([result.document, result.page, result.status, review_reasons(result)])
    for column, (name, kind) in enumerate(names.items(), start=4):
        if kind == "date":
            for row in tickets.iter_rows(min_row=2, min_col=column, max_col=column):
                row[0].number_format = "yyyy-mm-dd"
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
    with atomic_bytes(path) as handle:
        book.save(handle)
    return path

