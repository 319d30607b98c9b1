"""An example stage plugin: flags overweight loads and extracts the scale operator's name.

Load it with ``pagemill run tickets/ --out out/ --plugin examples/overweight_plugin.py``, or
package it and register it under the entry-point group ``pagemill``:

    [project.entry-points.pagemill]
    overweight = "overweight_plugin"
"""

from __future__ import annotations

import argparse
import re

from engine import EngineConfig, Field, Issue, OcrResult, PageTask, hookimpl

OPERATOR = re.compile(r"(?:weighmaster|operator)\s*[:\-]?\s*([A-Z][a-z]+(?: [A-Z][a-z]+)?)", re.IGNORECASE)


@hookimpl
def pagemill_add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-gross", type=float, default=None, help="flag loads heavier than this many lb (80000)")


@hookimpl
def pagemill_extract(page: PageTask, ocr: OcrResult, config: EngineConfig) -> list[Field]:
    match = OPERATOR.search(ocr.text)
    if match is None:
        return []
    return [Field("operator", match.group(1), ocr.mean_confidence / 100.0, raw=match.group(0), type="text")]


@hookimpl
def pagemill_validate(page: PageTask, fields: dict[str, Field], config: EngineConfig) -> list[Issue]:
    limit = float(config.options.get("max_gross") or 80000)
    gross = fields.get("gross_lb")
    if gross is not None and float(gross.value) > limit:
        return [Issue("overweight", f"gross {gross.value:,} lb is over {limit:,.0f} lb", field="gross_lb")]
    return []
