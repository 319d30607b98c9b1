"""Plugins that misbehave inside workers: answers that cannot be sent, threads that log, exits and
interrupts raised, huge messages, bad ingests, imports that hang. Each fails its pages (or the
run) with one line naming the plugin; no worker loops, no run crashes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import noop_config
from loguru import logger

from engine import deaths
from engine.api import Engine
from engine.records import ERROR_MESSAGE_CHARS, ErrorInfo

UNPICKLABLE = '''
import threading
from engine import Field, hookimpl

@hookimpl
def pagemill_extract(page, ocr, config):
    if page.index == 0:
        return [Field("lock", threading.Lock(), 0.9)]
    if page.index == 1:
        deep = []
        for _ in range(100_000):
            deep = [deep]
        return [Field("deep", deep, 0.9)]
    return [Field("fine", "yes", 0.9)]
'''

THREAD_LOGGER = '''
import threading
from loguru import logger
from engine import hookimpl

_started = []

def _talk():
    while True:
        logger.warning("a thread talks " + "x" * 100_000)

@hookimpl
def pagemill_extract(page, ocr, config):
    if not _started:
        _started.append(threading.Thread(target=_talk, daemon=True))
        _started[0].start()
    logger.warning("extract page {}", page.number)
    return []
'''

RAISES = '''
import sys
from engine import hookimpl

@hookimpl
def pagemill_extract(page, ocr, config):
    if page.index == 0:
        raise KeyboardInterrupt()
    if page.index == 1:
        sys.exit(5)
    if page.index == 2:
        raise RuntimeError("y" * 3_000_000)
    return []
'''

BAD_INGEST = '''
from engine import hookimpl
from engine.records import PageTask

@hookimpl(tryfirst=True)
def pagemill_ingest(document, config):
    if "empty" in document.path:
        return []
    if "twice" in document.path:
        return [PageTask(document.path, document.sha256, 0, 2, kind="noop", has_text_layer=True) for _ in range(3)]
    return None
'''

HANGS_AT_IMPORT = '''
import multiprocessing, time
if multiprocessing.parent_process() is not None:
    time.sleep(600)  # only in workers: a mount or a licence server that does not answer
from engine import hookimpl

@hookimpl
def pagemill_extract(page, ocr, config):
    return []
'''


def plugin(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def run(config, archive):
    seen = []
    with Engine(config, on_progress=lambda progress: seen.append(progress.counters)) as engine:
        results = list(engine.process(archive))
        return results, engine.last_summary, seen[-1] if seen else None


def test_an_answer_that_cannot_be_pickled_fails_its_page_naming_the_plugin_and_the_field(noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 3])
    config = noop_config(tmp_path / "out", plugins=(plugin(tmp_path, "unpicklable", UNPICKLABLE),))
    results, summary, counters = run(config, archive)
    assert len(results) == 6 == len({(r.document, r.page) for r in results})
    by_page = {(Path(r.document).name, r.page): r for r in results}
    lock, deep = by_page[("doc000.noop", 1)].error, by_page[("doc000.noop", 2)].error
    assert lock.type == "PluginResultError" and lock.error_class == "permanent"
    assert lock.message.startswith("plugin unpicklable: pagemill_extract returned a value that cannot be sent")
    assert "field 'lock' holds a _thread.lock" in lock.message
    assert "field 'deep' is nested too deeply (RecursionError)" in deep.message
    assert by_page[("doc000.noop", 3)].status == "ok" and by_page[("doc001.noop", 3)].status == "ok"
    assert counters.pages_killed == 0  # no worker died over it
    assert counters.pages_errored == 4 and counters.pages_done == 2
    assert summary.exit_code == 1


def test_a_plugin_thread_that_logs_long_lines_never_corrupts_an_answer(noop_archive, tmp_path) -> None:
    archive = noop_archive([6, 6])
    config = noop_config(tmp_path / "out", plugins=(plugin(tmp_path, "talker", THREAD_LOGGER),), noop_ms=20)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    try:
        results, summary, counters = run(config, archive)
    finally:
        logger.remove(sink)
    assert len(results) == 12 and all(r.status == "ok" for r in results)
    assert summary.status == "finished" and counters.pages_killed == 0
    talk = [line for line in lines if "a thread talks" in line]
    assert talk and max(len(line) for line in talk) < 2200  # forwarded lines are cut


def test_keyboardinterrupt_systemexit_and_a_huge_message_fail_the_page_not_the_worker(noop_archive, tmp_path) -> None:
    archive = noop_archive([4])
    config = noop_config(tmp_path / "out", plugins=(plugin(tmp_path, "raiser", RAISES),), workers="1")
    results, summary, counters = run(config, archive)
    by_page = {r.page: r for r in results}
    assert by_page[1].error.message == "plugin raiser: pagemill_extract raised KeyboardInterrupt"
    assert by_page[2].error.message == "plugin raiser: pagemill_extract raised SystemExit(5)"
    assert by_page[1].attempts == by_page[2].attempts == 1
    huge = by_page[3].error.message
    assert len(huge) < ERROR_MESSAGE_CHARS + 40 and huge.endswith(f"({3_000_000 - ERROR_MESSAGE_CHARS} more characters)")
    assert by_page[4].status == "ok"
    assert counters.pages_killed == 0


def test_error_messages_are_cut_once() -> None:
    error = ErrorInfo("permanent", "RuntimeError", "z" * 5_000_000)
    assert error.message.endswith("… (4998000 more characters)") and len(error.message) < ERROR_MESSAGE_CHARS + 40
    assert ErrorInfo(**{**error.__dict__}).message == error.message  # read back from the ledger: unchanged
    assert ErrorInfo("permanent", "E", "short").message == "short"


def test_an_ingest_with_no_pages_or_repeated_pages_fails_its_document_naming_the_plugin(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    for name in ("empty.bad", "twice.bad"):
        (archive / name).write_text(f"pages: 2\nname: {name}\n")
    config = noop_config(tmp_path / "out", plugins=(plugin(tmp_path, "badingest", BAD_INGEST),))
    results, summary, _ = run(config, archive)
    by_doc = {Path(r.document).name: r for r in results if r.status == "failed"}
    assert set(by_doc) == {"empty.bad", "twice.bad"}
    assert by_doc["empty.bad"].error.type == "EmptyDocumentError"
    assert by_doc["empty.bad"].error.message == "ingest found no pages (plugin badingest)"
    assert by_doc["twice.bad"].error.message.startswith("plugin badingest: pagemill_ingest returned 3 page tasks")
    assert len([r for r in results if r.status == "ok"]) == 2
    assert summary.exit_code == 1


@pytest.mark.slow
def test_workers_that_hang_at_import_stop_the_run_naming_the_cause(noop_archive, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(deaths, "START_TIMEOUT_FLOOR", 0.5)  # the parent's deadline, for a short test
    archive = noop_archive([2])
    config = noop_config(tmp_path / "out", plugins=(plugin(tmp_path, "hangs", HANGS_AT_IMPORT),), page_timeout=0.5)
    results, summary, _ = run(config, archive)
    assert results == []
    assert summary.status == "critical" and summary.exit_code == 3
    assert "workers do not start within 0.5 s: a plugin may hang at import" in summary.message
