"""The plugin contract of pagemill: every stage of a page is a hook.

Plugins implement any subset of these hooks with ``@engine.hookimpl``; the built-in stages in
``plugins/`` are ordinary plugins. Hooks marked *worker* run inside worker processes and must not
touch the terminal or the ledger; hooks marked *parent* run in the process that owns the run.

A plugin that raises is classified (``pagemill_classify_error``) and retried by the engine, never
by the plugin itself.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from engine.config import EngineConfig
    from engine.records import (
        Document,
        Field,
        Issue,
        OcrResult,
        PageContent,
        PageResult,
        PageTask,
        RunSummary,
    )
    from engine.seen import SeenValues

hookspec = pluggy.HookspecMarker("pagemill")


@hookspec
def pagemill_add_options(parser: argparse.ArgumentParser) -> None:
    """Add command-line options for this plugin (parent, at start-up).

    Use an argument group named after the plugin. Values reach every hook as
    ``config.options[dest]``; the Python API passes them as ``EngineConfig(options={...})``.
    """


@hookspec
def pagemill_preflight(config: EngineConfig) -> None:
    """Check the environment before any work (parent, once per run).

    Raise :class:`engine.errors.CriticalError` with a message that says how to fix it (for
    example the ``apt-get install`` command for a missing binary). The run then stops with exit 3
    before a page is touched.
    """


@hookspec
def pagemill_output_fields(config: EngineConfig) -> list[str] | None:
    """The fields this plugin extracts, in the order the outputs should show them (parent).

    results.csv and the XLSX export put these columns first, in plugin order (the built-in template
    first), so a table's columns do not depend on which fields a run happened to find; a field found
    that no plugin names follows them.
    """


@hookspec(firstresult=True)
def pagemill_ingest(document: Document, config: EngineConfig) -> list[PageTask] | None:
    """Open a document and split it into page tasks (worker).

    Return the list of :class:`PageTask` (one per page, ``index`` from 0), or ``None`` to let the
    next plugin try. The first plugin that returns a list wins. Raise a
    :class:`engine.errors.PermanentError` subclass for a file that cannot be read.
    """


@hookspec(firstresult=True)
def pagemill_load_page(page: PageTask, config: EngineConfig) -> PageContent | None:
    """Produce what the OCR stage reads for one page (worker).

    Return a :class:`PageContent` with ``text`` (a usable text layer) and/or ``image`` (a PIL
    image), or ``None`` to pass. The first result wins. When ``text`` is set and OCR is not
    forced, OCR is skipped and the text layer is used.
    """


@hookspec(firstresult=True)
def pagemill_ocr(page: PageTask, image: Any, config: EngineConfig) -> OcrResult | None:
    """Recognise the text of one page image (worker).

    ``image`` is a PIL image. Return an :class:`OcrResult` with the text, its lines and per-word
    confidences, or ``None`` to pass. The first result wins.
    """


@hookspec
def pagemill_extract(page: PageTask, ocr: OcrResult, config: EngineConfig) -> list[Field] | None:
    """Extract named fields from a page's text (worker).

    Every plugin's fields are merged by name; where two plugins give the same field, the one with
    the higher confidence wins.
    """


@hookspec
def pagemill_validate(page: PageTask, fields: dict[str, Field], config: EngineConfig) -> list[Issue] | None:
    """Check one page's fields and return the problems found (worker).

    Every plugin's issues are kept. A page with any issue of severity ``review`` gets the status
    ``review``.
    """


@hookspec
def pagemill_cross_check(result: PageResult, seen: SeenValues, config: EngineConfig) -> list[Issue] | None:
    """Check one finished page against the rest of the run (parent, before it is committed).

    ``seen`` remembers values across the run (for example ticket numbers) and is rebuilt from the
    ledger when a run resumes, by calling this hook again for every page already done (the issues
    and amendments asked for then are ignored). Return issues to add to the page; to flag a page
    finished earlier as well, call ``seen.amend(key, issue)`` (pages finish in any order, so a check
    that must not depend on it amends the earlier page: see ``plugins.ticket_validate``).
    """


@hookspec
def pagemill_page_done(result: PageResult) -> None:
    """A page is finished, committed to the ledger and handed on (parent), once per page across
    the runs into one output folder. For sinks and callbacks."""


@hookspec
def pagemill_page_amended(result: PageResult) -> None:
    """A page handed on before has changed (parent): a check across pages set an issue on it, such
    as a ticket number that a later page repeats. ``result`` is the page as the ledger now holds it;
    a sink that keeps pages by document hash and page replaces its row."""


@hookspec
def pagemill_run_started(run: dict[str, Any]) -> None:
    """A run starts (parent). ``run`` holds its id, output folder and config snapshot."""


@hookspec
def pagemill_run_finished(summary: RunSummary) -> None:
    """A run has ended, however it ended (parent)."""


@hookspec(firstresult=True)
def pagemill_classify_error(error: BaseException, stage: str, page: PageTask | None) -> str | None:
    """Classify an exception raised by a stage as ``transient``, ``permanent`` or ``critical``.

    Return ``None`` to leave it to the next plugin and finally the built-in classifier
    (:func:`engine.retry.classify_error`). Called in the worker where the error was raised.
    """
