"""Constant-cost stand-in stages, to measure the engine without PDF parsing or OCR.

Not registered as an entry point: load it with ``--plugin plugins.noop`` (``pagemill bench
--stages noop`` does). A document is a text file ending in ``.noop`` holding ``pages: N``; each
page "loads" a one-line text after ``options["noop_ms"]`` milliseconds of CPU work, so OCR is
skipped and extraction and validation run on that line.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from engine import hookimpl
from engine.records import Document, PageContent, PageTask

SUFFIX = ".noop"


def write_noop_document(path: Path, pages: int) -> Path:
    """Create a stand-in document of ``pages`` pages (its name is in it, so copies differ)."""
    path.write_text(f"pages: {pages}\nname: {path.name}\n", encoding="utf-8")
    return path


def _busy_wait(milliseconds: float) -> None:
    end = time.perf_counter() + milliseconds / 1000.0
    while time.perf_counter() < end:
        pass


@hookimpl
def pagemill_add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--noop-ms", dest="noop_ms", type=float, default=None, metavar="MS",
                        help="CPU milliseconds each stand-in page costs (plugins.noop)")


@hookimpl(tryfirst=True)
def pagemill_ingest(document: Document, config: object) -> list[PageTask] | None:
    if not document.path.endswith(SUFFIX):
        return None
    text = Path(document.path).read_text(encoding="utf-8")
    pages = int(text.splitlines()[0].split(":", 1)[1])
    return [
        PageTask(document.path, document.sha256, index, pages, kind="noop", priority=document.priority, has_text_layer=True)
        for index in range(pages)
    ]


@hookimpl(tryfirst=True)
def pagemill_load_page(page: PageTask, config: object) -> PageContent | None:
    if page.kind != "noop":
        return None
    _busy_wait(float(getattr(config, "options", {}).get("noop_ms", 0) or 0))
    return PageContent(text=f"noop page {page.number} of {page.page_count}", source="text-layer")
