"""Result outputs, written from the ledger (never from memory), replaced together and atomically.

``write_outputs`` writes, in one pass over the pages in the outputs (ordered by document, then page):

- ``results.jsonl``: one JSON record per page (see :func:`engine.output_record.page_record`), the
  record the ledger stored when the page was committed, written as it is;
- ``results.csv``: one row per page — document, page, status, one column per field name (in the
  order given, else in the order the names first appear), confidence (the mean of the page's
  field confidences), issues (their codes joined by "; ", or the error's type for a failed page);
- ``review.csv``: the pages with status review or failed — document, page, status, reasons;
- ``report.json``: the run's report passed in, plus the output folder's totals (below).

The CSV files are UTF-8 with a byte-order mark, so that spreadsheets read accented names right
(Python reads them with ``encoding="utf-8-sig"``). ``engine.xlsx_export`` writes the same table as a
workbook (``pagemill export --format xlsx``).

Each file is written to a temporary file beside it (engine.atomic_files); once all are complete and
synced they are moved into place with ``os.replace``, so a reader sees the old files or the new
ones, never half of one (a full disk leaves the previous outputs as they were). A CSV cell that a
spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``, ``@``) gets a leading
``'``; numbers are written as they are. The JSONL file keeps every value unchanged.

report.json: the figures of the run that wrote it, then those of the output folder after it.

| key | meaning |
| --- | --- |
| ``run_id``, ``status``, ``exit_code``, ``message`` | the run; ``status`` and ``exit_code`` take the folder into account: ``partial`` (exit 1) when the outputs hold a failed page, from this run or an earlier one |
| ``pages_total`` | pages of this run's inputs: ``pages_ok + pages_review + pages_failed + pages_skipped`` |
| ``pages_ok``, ``pages_review``, ``pages_failed`` | pages this run processed, by status (a document that cannot be opened is one failed page) |
| ``pages_skipped`` | pages of this run's inputs already in the outputs, not redone (failed ones too, unless ``--retry-failed``); an identical copy of a document is not counted again |
| ``documents`` | documents this run opened or failed to open |
| ``duplicate_documents`` | documents of this run's inputs that are an exact copy (the same content) of another document, not processed again; each is named in a warning |
| ``wall_seconds``, ``pages_per_second`` | this run's wall time; pages processed per second |
| ``stage_seconds``, ``stage_busy_seconds`` | seconds per stage: summed over this run's pages; workers' busy time, failed attempts included |
| ``errors_by_class``, ``errors_by_type`` | this run's failed pages by error class and type (they add up to ``pages_failed``) |
| ``peak_workers``, ``breaker_events``, ``breakers`` | this run's most workers at once; circuit breaker state changes |
| ``pages``, ``ok``, ``review``, ``failed`` | the pages in the outputs (results.jsonl), by status, whichever run did them |
| ``outputs_ok``, ``outputs_review``, ``outputs_failed`` | the same figures as ``ok``, ``review``, ``failed`` |
| ``outputs_errors_by_class``, ``outputs_errors_by_type`` | the failed pages in the outputs by error class and type (they add up to ``failed``) |
| ``pages_done_before`` | pages in the outputs done by earlier runs: ``pages`` less this run's pages in them |
| ``field_order`` | the fields the plugins extract: the first field columns of results.csv |
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from engine.atomic_files import Pending as _Pending
from engine.atomic_files import atomic_file, replaced_together
from engine.ledger_queries import LedgerReader, OUTPUT_COLUMNS, result_of
from engine.output_record import dumps, encode_record, page_record, record_line
from engine.records import PageResult

OUTPUT_NAMES = ("results.jsonl", "results.csv", "review.csv", "report.json")
CSV_ENCODING = "utf-8-sig"  # with a byte-order mark: spreadsheets take the file for UTF-8
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# the order write_outputs unpacks a row in
assert OUTPUT_COLUMNS[:14] == ("record", "fields", "issues", "confidence", "sha256", "page_index", "document",
                               "page_count", "status", "attempts", "error_class", "error_type", "error_message",
                               "error_stage")

__all__ = ["CSV_ENCODING", "OUTPUT_NAMES", "atomic_file", "csv_cell", "page_record", "review_reasons", "typed_value",
           "write_outputs", "_Pending"]


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
                  field_order: Sequence[str] | None = None,
                  targets: Mapping[str, Path] | None = None) -> dict[str, Path]:
    """Write results.jsonl, results.csv, review.csv and report.json from the pages in the outputs
    of the ledger; returns their paths by name. ``field_order`` fixes the first field columns of
    results.csv. ``targets`` (name → path) writes only those outputs, where given (an export);
    by default all four go in ``out_dir``. An OSError (a full disk) leaves the previous files as
    they were."""
    out_dir = Path(out_dir)
    paths = dict(targets) if targets is not None else {name: out_dir / name for name in OUTPUT_NAMES}
    unknown = set(paths) - set(OUTPUT_NAMES)
    if unknown:
        raise ValueError(f"not an output: {', '.join(sorted(unknown))}")
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    names = column_order(ledger, field_order) if "results.csv" in paths else []
    totals = {"pages": 0, "ok": 0, "review": 0, "failed": 0}
    by_class: dict[str, int] = {}
    by_type: dict[str, int] = {}
    order = [name for name in OUTPUT_NAMES if name in paths]
    encodings = [(paths[name], CSV_ENCODING if name.endswith(".csv") else "utf-8") for name in order]
    with replaced_together(encodings) as pending:
        files = dict(zip(order, pending))
        write_line = files["results.jsonl"].handle.write if "results.jsonl" in files else None
        table = csv.writer(files["results.csv"].handle) if "results.csv" in files else None
        queue = csv.writer(files["review.csv"].handle) if "review.csv" in files else None
        if table is not None:
            table.writerow(["document", "page", "status", *names, "confidence", "issues"])
        if queue is not None:
            queue.writerow(["document", "page", "status", "reasons"])
        for row in ledger.output_rows():
            (record, fields_text, issues, confidence, _sha, index, document, _count, status, _attempts, error_class,
             error_type, error_message, error_stage, *_rest) = row
            if write_line is not None:
                if record is None:  # a page committed before records were kept
                    record = encode_record(result_of(dict(zip(OUTPUT_COLUMNS, row))))
                write_line(record_line(document, record))
            if table is not None or queue is not None:
                issues_cell, reasons = _issues_cells(issues, error_class, error_type, error_message, error_stage)
                if table is not None:
                    fields = json.loads(fields_text) if fields_text and fields_text != "{}" else {}
                    table.writerow([
                        csv_cell(document), index + 1, status,
                        *(csv_cell(fields[n]["value"]) if n in fields else "" for n in names),
                        "" if confidence is None else round(confidence, 3),
                        csv_cell(issues_cell),
                    ])
                if queue is not None and status != "ok":
                    queue.writerow([csv_cell(document), index + 1, status, csv_cell(reasons)])
            totals["pages"] += 1
            totals[status] = totals.get(status, 0) + 1
            if error_class:
                by_class[error_class] = by_class.get(error_class, 0) + 1
                by_type[error_type or ""] = by_type.get(error_type or "", 0) + 1
        if "report.json" in files:
            folder = {**totals, "outputs_ok": totals["ok"], "outputs_review": totals["review"],
                      "outputs_failed": totals["failed"], "outputs_errors_by_class": by_class,
                      "outputs_errors_by_type": by_type}
            files["report.json"].handle.write(dumps({**report, **folder}, indent=2) + "\n")
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
