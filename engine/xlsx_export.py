"""The XLSX export (``pagemill export --format xlsx``, openpyxl): Tickets, Review and Summary sheets.

- Tickets: one row per page in the outputs — document, page, status, one typed column per field
  (numbers as numbers, dates as dates), confidence;
- Review: the pages with status review or failed and the reasons;
- Summary: two blocks, the output folder (pages by status, documents, runs) and the last run
  (its status, its pages, wall time, pages per second, peak workers).

Every sheet has its header row frozen and bold, and columns about as wide as their content (capped);
Tickets and Review have an autofilter on the header.

Every text is a text cell, never a formula or an error value: document names and OCR'd fields are
untrusted, and openpyxl would store ``=HYPERLINK(...)`` as a formula. A text that a spreadsheet
would read as a formula when edited (``=``, ``+``, ``-``, ``@``) is kept as it is, with the
quote prefix that keeps it text; characters an XLSX cannot hold (control characters) become
U+FFFD.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from engine.atomic_files import atomic_file
from engine.errors import ConfigError
from engine.ledger_queries import LedgerReader
from engine.output_record import mean_confidence
from engine.sinks import FORMULA_STARTS, review_reasons, typed_value

NUMBER_FORMATS = {"date": "yyyy-mm-dd", "money": "0.00"}  # how a field type's cells are shown
MAX_WIDTH = 60  # characters: a long reason or path does not make a column wider than this
MIN_WIDTH = 6

__all__ = ["NUMBER_FORMATS", "write_xlsx"]


class _Widths:
    """The widest text of each column, measured as rows are added."""

    def __init__(self) -> None:
        self.chars: dict[int, int] = {}

    def add(self, row: Sequence[Any]) -> None:
        for column, value in enumerate(row, start=1):
            size = _text_width(value)
            if size > self.chars.get(column, 0):
                self.chars[column] = size

    def apply(self, sheet: Any) -> None:
        from openpyxl.utils import get_column_letter

        for column, size in self.chars.items():
            sheet.column_dimensions[get_column_letter(column)].width = min(MAX_WIDTH, max(MIN_WIDTH, size + 2))


def _append(sheet: Any, row: Sequence[Any]) -> None:
    """Add a row, every string in it a text cell (see the module docstring)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    sheet.append([ILLEGAL_CHARACTERS_RE.sub("\ufffd", value) if isinstance(value, str) else value for value in row])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
            if cell.value.startswith(FORMULA_STARTS):
                cell.quotePrefix = True


def _text_width(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, date):
        return 10
    if isinstance(value, float):
        return len(f"{value:.3f}".rstrip("0").rstrip("."))
    return max((len(line) for line in str(value).splitlines()), default=0)


def _sheet(book: Any, title: str, header: list[str], first: bool = False) -> tuple[Any, _Widths]:
    sheet = book.active if first else book.create_sheet(title)
    sheet.title = title
    _append(sheet, header)
    widths = _Widths()
    widths.add(header)
    return sheet, widths


def _summary_rows(ledger: LedgerReader, totals: dict[str, int], report: dict[str, Any]) -> list[list[Any]]:
    """Two blocks with human labels: the output folder, then the last run."""
    runs = ledger.runs()
    rows: list[list[Any]] = [
        ["Output folder", None],
        ["Pages", sum(totals.values())],
        ["OK", totals.get("ok", 0)],
        ["To review", totals.get("review", 0)],
        ["Failed", totals.get("failed", 0)],
        ["Documents", ledger.documents_in_outputs()],
        ["Runs", len(runs)],
    ]
    last = runs[-1] if runs else None
    if last is None:
        return rows
    report = report or last.get("summary") or {}
    processed = [report.get(key) for key in ("pages_ok", "pages_review", "pages_failed")]
    rows += [
        [None, None],
        ["Last run", f"run {last['id']}"],
        ["Status", last.get("status")],
        ["Started", last.get("started")],
        ["Finished", last.get("finished")],
    ]
    if all(isinstance(count, int) for count in processed):
        rows += [
            ["Pages processed", sum(processed)],
            ["Processed: OK", processed[0]],
            ["Processed: to review", processed[1]],
            ["Processed: failed", processed[2]],
            ["Pages from earlier runs, not redone", report.get("pages_skipped")],
        ]
    for label, key in (("Wall time (s)", "wall_seconds"), ("Pages per second", "pages_per_second"),
                       ("Peak workers", "peak_workers")):
        if key in report:
            rows.append([label, report[key]])
    return rows


def write_xlsx(ledger: LedgerReader, path: Path, report: dict[str, Any] | None = None,
               field_order: Sequence[str] | None = None) -> Path:
    """Tickets (typed columns), Review (the reason per page) and Summary sheets, from the ledger.
    ``field_order`` fixes the first field columns, as in results.csv; ``report`` is the last run's
    summary (read from the ledger when not given)."""
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
    tickets, ticket_widths = _sheet(book, "Tickets", ["document", "page", "status", *names, "confidence"], first=True)
    review, review_widths = _sheet(book, "Review", ["document", "page", "status", "reasons"])
    totals = {"ok": 0, "review": 0, "failed": 0}
    for result in ledger.iter_results():
        totals[result.status] = totals.get(result.status, 0) + 1
        confidence = mean_confidence(result.fields)
        row = [
            result.document, result.page, result.status,
            *(typed_value(kind, result.fields[n].value) if n in result.fields else None for n, kind in names.items()),
            None if confidence is None else round(confidence, 3),
        ]
        _append(tickets, row)
        ticket_widths.add(row)
        if result.status != "ok":
            reasons = [result.document, result.page, result.status, review_reasons(result)]
            _append(review, reasons)
            review_widths.add(reasons)
    for column, kind in enumerate(names.values(), start=4):
        if kind in NUMBER_FORMATS:
            for cells in tickets.iter_rows(min_row=2, min_col=column, max_col=column):
                cells[0].number_format = NUMBER_FORMATS[kind]
    summary, summary_widths = book.create_sheet("Summary"), _Widths()  # no header row: two blocks with headings
    for row in _summary_rows(ledger, totals, report or {}):
        _append(summary, row)
        summary_widths.add(row)
    for sheet, widths in ((tickets, ticket_widths), (review, review_widths), (summary, summary_widths)):
        widths.apply(sheet)
    for sheet in (tickets, review):
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = sheet.dimensions
    for row in summary.iter_rows():
        if row[0].value in ("Output folder", "Last run"):
            row[0].font = Font(bold=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as handle:
        book.save(handle)
    return path
