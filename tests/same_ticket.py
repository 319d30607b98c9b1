"""A test plugin: every page carries the ticket number 555 (a duplicate across documents)."""

from __future__ import annotations

from typing import Any

from engine import Field, hookimpl


@hookimpl
def pagemill_extract(page: Any, ocr: Any, config: Any) -> list[Field]:
    return [Field("ticket_number", "555", 0.99, raw="555", type="id")]
