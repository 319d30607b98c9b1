"""A test plugin that misbehaves on purpose, configured through ``config.options``.

- ``fault_kind``: hang, exit, segv, sigkill, transient, permanent, critical
- ``fault_match``: the fault fires on pages whose "document page N" contains this text
- ``fault_limit``: fire at most this many times in all (counted in ``fault_state``, a file,
  across worker processes); unlimited when absent
- ``trace_file``: every task appends ``pid<TAB>what<TAB>monotonic seconds`` to this file as it
  starts (``what`` is "doc page N" for a page, "doc ingest" for a document), so a test sees the
  order in which tasks started and in which worker
- ``ingest_gate``, ``page_gate``: a document's ingest, a page's load, waits (at most 30 s) until
  this file exists
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path

from engine import hookimpl
from engine.errors import CriticalError, PermanentError, TransientError


def _should_fire(page, options) -> bool:
    match = options.get("fault_match")
    if not match or match not in f"{page.document} page {page.number}":
        return False
    limit = options.get("fault_limit")
    state = options.get("fault_state")
    if limit is not None and state:
        path = Path(state)
        fired = path.stat().st_size if path.exists() else 0
        if fired >= int(limit):
            return False
        with open(path, "ab") as handle:
            handle.write(b"x")
    return True


def _trace(options, what: str) -> None:
    path = options.get("trace_file")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\t{what}\t{time.monotonic():.6f}\n")


def _wait_for(gate) -> None:
    if gate:
        deadline = time.monotonic() + 30
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.01)


@hookimpl(wrapper=True)
def pagemill_load_page(page, config):
    _trace(config.options, f"{page.document} page {page.number}")
    _wait_for(config.options.get("page_gate"))
    return (yield)


@hookimpl(wrapper=True)
def pagemill_ingest(document, config):
    _trace(config.options, f"{document.path} ingest")
    _wait_for(config.options.get("ingest_gate"))
    return (yield)


def read_trace(path) -> list[tuple[int, str, float]]:
    """The lines of a ``trace_file``: (pid, what, monotonic seconds), in the order written."""
    if not Path(path).exists():
        return []
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        pid, what, at = line.split("\t")
        rows.append((int(pid), what, float(at)))
    return rows


@hookimpl
def pagemill_extract(page, ocr, config):
    options = config.options
    if not _should_fire(page, options):
        return []
    kind = options.get("fault_kind")
    if kind == "hang":
        time.sleep(3600)
    elif kind == "exit":
        os._exit(3)
    elif kind == "segv":
        ctypes.string_at(0)  # a real segfault in C code
    elif kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "transient":
        raise TransientError("scripted transient failure")
    elif kind == "permanent":
        raise PermanentError("scripted permanent failure")
    elif kind == "critical":
        raise CriticalError("scripted critical failure")
    return []
