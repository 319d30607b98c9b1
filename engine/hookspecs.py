"""The plugin contract of pagemill: every stage of a page is a hook.

Plugins implement any subset of these hooks with ``@engine.hookimpl``; the built-in stages in
``plugins/`` are ordinary plugins. Hooks marked *worker* run inside worker processes and must not
touch the terminal or the ledger; hooks marked *parent* run in the process that owns the run.

A plugin that raises is classified (``pagemill_classify_error``) and retried by the engine, never
by the plugin itself. What a hook returns is checked: a stage hook that returns the wrong type
fails the page with a permanent ``PluginResultError`` naming the plugin and the hook; a parent hook
that raises (or returns the wrong type) stops the run with a ``PluginError`` naming them.

A plugin's name: a module's name (``--plugin package.module``, ``plugins=[module]``), a file's stem
(``--plugin path/to/file.py``), an entry point's name, and for an object passed to
``Engine(plugins=[...])`` its ``name`` attribute, else its ``__name__`` (a class), else its class's
name. Names are unique in a run: give two instances of one class each a ``name`` of its own. A
plugin object reaches the worker processes pickled, with every attribute it holds; make locks,
open files and connections in the worker (on first use in a hook), not in ``__init__``.

A page is known by its *key*: ``(sha256 of the document's bytes, 0-based page index)``
(``PageTask.key``, ``PageResult.key``); ``PageResult.page`` is the 1-based number people read.
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

    ``parser`` is the ``argparse.ArgumentParser`` of the ``pagemill run`` and ``resume`` commands
    (for the Python API, a parser of its own that is never shown). Add the options to an argument
    group named after the plugin, ``group = parser.add_argument_group("myplugin")``, or to
    ``parser`` itself (``--help`` then lists them under "plugin options").

    Each option's ``dest`` is its key: the value reaches every hook as ``config.options[dest]``,
    set by the command line, ``EngineConfig(options={...})``, ``PAGEMILL_<DEST>`` or a
    ``dest = value`` line of pagemill.toml (read with the option's ``type``), else the option's
    ``default``. A ``dest`` that is a pagemill setting, or a flag that another option has, is refused
    with an error naming the plugin.
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

    ``seen`` (:class:`engine.SeenValues`) remembers values across the run (for example ticket
    numbers) and is rebuilt from the ledger when a run resumes, by calling this hook again for every
    page already done (the issues and amendments asked for then are ignored):

    - ``seen.first_seen(name, value, where, key=result.key)`` records that field ``name`` has
      ``value`` on this page (``where`` names it for people, e.g. ``result.where()``; ``key`` is the
      page key, ``(sha256, 0-based index)``) and returns the ``where`` of the first page that had
      it, or ``None`` when this page is the first;
    - ``seen.places(name, value)`` gives every :class:`engine.Place` (``key``, ``where``) the value
      was recorded at, first first;
    - ``seen.amend(key, issue)`` sets ``issue`` on the page ``key`` finished earlier (replacing an
      issue of the same code and field there); that page is changed in the ledger and the outputs,
      and, when it was handed on already, passed to ``pagemill_page_amended``.

    Return issues to add to this page. Pages finish in any order, so a check that must not depend on
    it amends the earlier page as well: see ``plugins.ticket_validate``.
    """


@hookspec
def pagemill_page_done(result: PageResult) -> None:
    """A page is finished, committed to the ledger and handed on (parent), once per page across
    the runs into one output folder. For sinks and callbacks."""


@hookspec
def pagemill_page_amended(result: PageResult) -> None:
    """A page handed on before has changed (parent): a check across pages set an issue on it, such
    as a ticket number that a later page repeats. ``result`` is the page as the ledger now holds it;
    a sink that keeps pages by document hash and page replaces its row. The Python API passes it to
    ``Engine(on_page_amended=...)`` as well."""


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
