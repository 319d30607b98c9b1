"""A page as its line of results.jsonl: built once, when the page is committed.

The ledger keeps each page's record as JSON text (without the document path, which changes when a
file is renamed); the outputs splice the path in front and write the rest verbatim, so writing
results.jsonl re-encodes nothing.
"""

from __future__ import annotations

import json
import math
from typing import Any

from engine.records import Field, PageResult


def mean_confidence(fields: dict[str, Field]) -> float | None:
    """The page's confidence: the mean of its fields' confidences (None without fields)."""
    if not fields:
        return None
    return round(sum(f.confidence for f in fields.values()) / len(fields), 4)


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so that every JSON reader takes the record."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


_STRICT = json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=False)  # made once: json.dumps with
# options builds an encoder per call


def dumps(value: Any, indent: int | None = None) -> str:
    """Strict JSON (no NaN), with the slow clean-up pass only for a value that needs it."""
    encoder = _STRICT if indent is None else json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=False,
                                                               indent=indent)
    try:
        return encoder.encode(value)
    except ValueError:
        return encoder.encode(json_safe(value))


def _record_body(result: PageResult) -> dict[str, Any]:
    error = result.error
    return {
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


def page_record(result: PageResult) -> dict[str, Any]:
    """One line of results.jsonl, as a dict."""
    return json_safe({"document": result.document, **_record_body(result)})


def encode_record(result: PageResult) -> str:
    """The page's record as JSON text, without its document path (see :func:`record_line`)."""
    return dumps(_record_body(result))


def record_line(document: str, encoded: str) -> str:
    """A results.jsonl line: the document path first, then the stored record as it is."""
    return '{"document": ' + json.dumps(document, ensure_ascii=False) + ", " + encoded[1:] + "\n"
