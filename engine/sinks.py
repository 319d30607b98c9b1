"""Result outputs, written from the ledger (never from memory), each file replaced atomically.

``write_outputs`` writes, in one pass over the committed pages (ordered by document, then page):

- ``results.jsonl``: one JSON record per page (see :func:`page_record`);
- ``results.csv``: one row per page — document, page, status, one column per field name (in the
  order the names first appear), confidence (the mean of the page's field confidences), issues
  (their codes joined by "; ", or the error's type for a failed page);
- ``review.csv``: the pages with status review or failed — document, page, status, reasons;
- ``report.json``: the report passed in, plus totals counted from the ledger.

``write_xlsx`` writes the same table as a workbook (``pagemill export --format xlsx``).

Each file is written to a temporary file in the output folder and moved into place with
``os.replace``, so a reader sees the old file or the new one, never half of one. A CSV cell that
a spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``, ``@``) gets a leading
``'``; numbers are written as they are. The JSONL file keeps every value unchanged.
"""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path
from typing import IO, Any

from engine.errors import ConfigError
from engine.ledger import Ledger, mean_confidence
from engine.records import PageResult

OUTPUT_NAMES = ("results.jsonl", "results.csv", "review.csv", "report.json")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file that appears at ``path`` only once it is complete (temporary file + ``os.replace``).

    The temporary file is created like any other (the umask applies), so the result has the usual
    permissions; it is removed if the block raises."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    text = "b" not in mode
    options: dict[str, Any] = {"encoding": "utf-8", "newline": ""} if text else {}
    try:
        with open(temporary, mode.replace("w", "x"), **options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so that every JSON reader takes the record."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def page_record(result: PageResult) -> dict[str, Any]:
    """One line of results.jsonl."""
    error = result.error
    return _json_safe({
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
    })


def review_reasons(result: PageResult) -> str:
    """Why a page needs a person: its error, or its issues' messages (those of severity review
    first and only, when there are any)."""
    if result.error is not None:
        error = result.error
        where = f" in {error.stage}" if error.stage else ""
        return f"{error.error_class} error{where}: {error.one_line()}"
    issues = [i for i in result.issues if i.severity != "info"] or list(result.issues)
    return "; ".join(i.message for i in issues)


def issue_summary(result: PageResult) -> str:
    """The issues cell of results.csv."""
    if result.issues:
        return "; ".join(i.code for i in result.issues)
    return f"error: {result.error.type}" if result.error else ""


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


def write_outputs(ledger: Ledger, out_dir: Path, report: dict[str, Any]) -> dict[str, Path]:
    """Write results.jsonl, results.csv, review.csv and report.json from the ledger's committed
    pages; returns their paths by name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in OUTPUT_NAMES}
    names = ledger.field_names()
    totals = {"pages": 0, "ok": 0, "review": 0, "failed": 0}
    by_class: dict[str, int] = {}
    by_type: dict[str, int] = {}
    with ExitStack() as stack:
        jsonl = stack.enter_context(atomic_file(paths["results.jsonl"]))
        table = csv.writer(stack.enter_context(atomic_file(paths["results.csv"])))
        review = csv.writer(stack.enter_context(atomic_file(paths["review.csv"])))
        table.writerow(["document", "page", "status", *names, "confidence", "issues"])
        review.writerow(["document", "page", "status", "reasons"])
        for result in ledger.iter_results():
            jsonl.write(json.dumps(page_record(result), ensure_ascii=False, default=str) + "\n")
            confidence = mean_confidence(result.fields)
            table.writerow([
                csv_cell(result.document), result.page, result.status,
                *(csv_cell(result.fields[n].value) if n in result.fields else "" for n in names),
                "" if confidence is None else round(confidence, 3),
                csv_cell(issue_summary(result)),
            ])
            totals["pages"] += 1
            totals[result.status] = totals.get(result.status, 0) + 1
            if result.error is not None:
                by_class[result.error.error_class] = by_class.get(result.error.error_class, 0) + 1
                by_type[result.error.type] = by_type.get(result.error.type, 0) + 1
            if result.status != "ok":
                review.writerow([csv_cell(result.document), result.page, result.status,
                                 csv_cell(review_reasons(result))])
    with atomic_file(paths["report.json"]) as handle:
        merged = {**report, **totals, "errors_by_class": by_class, "errors_by_type": by_type}
        json.dump(_json_safe(merged), handle, indent=2, ensure_ascii=False, default=str)
        handle.write("\n")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as handle:
        book.save(handle)
    return path
