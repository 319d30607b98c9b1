"""The host's multiprocessing state, left as the host had it.

- Starting a forkserver or spawn process makes the standard library fix the host's default start
  method: ``multiprocessing.spawn.get_preparation_data`` calls ``get_start_method()``, which
  chooses the platform default for good, so a later ``multiprocessing.set_start_method()`` of the
  host raises "context has already been set". pagemill uses a context of its own
  (``get_context(mp_context)``) and never needs the default one: :class:`HostStartMethod` puts
  "not chosen" back when the host had not chosen.
- The forkserver's preload list is one per process: pagemill adds its modules to what the host
  set (:func:`preload_added`) instead of replacing it.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
from contextlib import contextmanager
from typing import Iterator


class HostStartMethod:
    """Whether the host had chosen a start method when pagemill started; :meth:`restore` undoes
    the choice the standard library made as a side effect of starting pagemill's workers."""

    def __init__(self) -> None:
        self.unset = multiprocessing.get_start_method(allow_none=True) is None

    def restore(self) -> None:
        if not self.unset:
            return
        default = multiprocessing.context._default_context
        # only the implicit choice: a context the host set meanwhile is another object
        if getattr(default, "_actual_context", None) is getattr(default, "_default_context", object()):
            default._actual_context = None


@contextmanager
def preload_added() -> Iterator[None]:
    """Within the block pagemill may set the forkserver preload list; afterwards the list is what
    the host had set, followed by what pagemill added."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    before = list(getattr(server, "_preload_modules", []) or [])
    try:
        yield
    finally:
        if server is not None:
            ours = list(getattr(server, "_preload_modules", []) or [])
            server._preload_modules = before + [name for name in ours if name not in before]


__all__ = ["HostStartMethod", "preload_added"]
