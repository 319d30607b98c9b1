"""Result outputs, written from the ledger (never from memory), each file replaced atomically:
``results.jsonl``, ``results.csv``, ``review.csv`` and ``report.json``."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TextIO

from engine.ledger import Ledger
from engine.records import PageResult


@contextmanager
def atomic_text(path: Path) -> Iterator[TextIO]:
    """Write to a temporary file beside ``path`` and move it into place: no reader sees half a file."""
    handle = tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False,
                                         encoding="utf-8", newline="")
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
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("results.jsonl", "results.csv", "review.csv", "report.json")}
    field_names: dict[str, None] = {}
    totals = {"pages": 0, "ok": 0, "review": 0, "failed": 0}
    by_class: dict[str, int] = {}
    by_type: dict[str, int] = {}
    with atomic_text(paths["results.jsonl"]) as jsonl, atomic_text(paths["review.csv"]) as review_file:
        review = csv.writer(review_file)
        review.writerow(["document", "page", "status", "reasons"])
        for result in ledger.iter_results():
            jsonl.write(json.dumps(page_record(result), default=str) + "\n")
            for name in result.fields:
                field_names.setdefault(name)
            totals["pages"] += 1
            totals[result.status] += 1
            if result.error is not None:
                by_class[result.error.error_class] = by_class.get(result.error.error_class, 0) + 1
                by_type[result.error.type] = by_type.get(result.error.type, 0) + 1
            if result.status != "ok":
                review.writerow([result.document, result.page, result.status, review_reasons(result)])
    with atomic_text(paths["results.csv"]) as csv_file:
        writer = csv.writer(csv_file)
        names = list(field_names)
        writer.writerow(["document", "page", "status", *names, "confidence", "issues"])
        for result in ledger.iter_results():
            confidences = [f.confidence for f in result.fields.values()]
            writer.writerow([
                result.document, result.page, result.status,
                *(result.fields[n].value if n in result.fields else "" for n in names),
                round(min(confidences), 3) if confidences else "",
                "; ".join(i.code for i in result.issues) or (result.error.type if result.error else ""),
            ])
    with atomic_text(paths["report.json"]) as report_file:
        json.dump({**report, **totals, "errors_by_class": by_class, "errors_by_type": by_type}, report_file,
                  indent=2, default=str)
    return paths
