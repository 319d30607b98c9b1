"""A test plugin that loads ``.flaky`` documents and fails on purpose while a service is "down".

A ``.flaky`` document is a text file holding ``pages: N``. Its pages are loaded by this plugin
only (other pages never call it), with ``flaky_ms`` milliseconds of sleep each. The first
``flaky_failures`` loads in all (counted in the file ``flaky_state``, across worker processes)
raise a TransientError, as a remote service that is down would; the later ones succeed.
"""

from __future__ import annotations

import time
from pathlib import Path

from engine import hookimpl
from engine.errors import TransientError
from engine.records import PageContent, PageTask

SUFFIX = ".flaky"


@hookimpl
def pagemill_ingest(document, config):
    if not document.path.endswith(SUFFIX):
        return None
    pages = int(Path(document.path).read_text(encoding="utf-8").split(":", 1)[1])
    return [PageTask(document.path, document.sha256, index, pages, kind="flaky", priority=document.priority,
                     has_text_layer=True) for index in range(pages)]


@hookimpl
def pagemill_load_page(page, config):
    if page.kind != "flaky":
        return None
    options = config.options
    time.sleep(float(options.get("flaky_ms", 0)) / 1000)
    state = Path(options["flaky_state"])
    failed = state.stat().st_size if state.exists() else 0
    if failed < int(options.get("flaky_failures", 0)):
        with open(state, "ab") as handle:
            handle.write(b"x")
        raise TransientError("the service is down")
    return PageContent(text=f"flaky page {page.number}", source="text-layer")
