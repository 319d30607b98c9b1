"""A test plugin that misbehaves on purpose, configured through ``config.options``.

- ``fault_kind``: hang, exit, segv, sigkill, transient, permanent, critical
- ``fault_match``: the fault fires on pages whose "document page N" contains this text
- ``fault_limit``: fire at most this many times in all (counted in ``fault_state``, a file,
  across worker processes); unlimited when absent
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
