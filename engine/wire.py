"""What a worker sends to the parent, and how (worker side).

Every message goes through one :class:`Channel`: pickled first (``ForkingPickler``, as
``Connection.send`` does), then written whole under one lock, so a plugin thread that logs while
the main thread answers never interleaves its bytes with the answer's (a message over the pipe's
buffer size is written in several pieces).

An answer that cannot be pickled (a plugin put a lock, a socket or a structure nested too deeply
into a field) never reaches the pipe: :func:`unsendable` says which part of it could not be sent
and the worker answers a permanent failure of that page instead, naming the part and, when known,
the plugin that returned it.
"""

from __future__ import annotations

import dataclasses
import threading
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable

LOG_MESSAGE_CHARS = 2000  # a log line forwarded to the parent is cut to this length
_SEARCH_DEPTH = 4  # how deep unsendable() looks for the part that cannot be pickled


class Channel:
    """The worker's end of its pipe: one writer at a time, whole messages only."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        self.send_bytes(pickled(message))

    def send_bytes(self, data: bytes) -> None:
        with self._lock:
            self.conn.send_bytes(data)

    def recv(self) -> Any:
        return self.conn.recv()

    def poll(self) -> bool:
        return self.conn.poll()


def pickled(message: Any) -> bytes:
    return bytes(ForkingPickler.dumps(message))


def cut(text: str, limit: int = LOG_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def unsendable(value: Any, owner_of: Callable[[Any], Any] = lambda part: None) -> tuple[str, Any]:
    """Why ``value`` cannot be pickled, in words (which part holds what), and what ``owner_of``
    says of the outermost part it knows (the plugin call that returned it), else None. Called
    only once pickling ``value`` failed."""
    chain = _failing_chain(value, "result", 0)
    if not chain:  # it pickles now: nothing to name
        return "it pickled on a second try", None
    path, obj, error = chain[-1]
    owner = next((found for _, part, _ in chain[1:] if (found := owner_of(part)) is not None), None)
    what = _name_of(path)
    if isinstance(error, RecursionError):
        return f"{what} is nested too deeply (RecursionError)", owner
    module = type(obj).__module__
    kind = type(obj).__qualname__ if module == "builtins" else f"{module}.{type(obj).__qualname__}"
    reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
    because = f"{type(error).__name__}: {reason}" if reason else type(error).__name__
    return f"{what} holds a {kind} ({because})", owner


def _failing_chain(value: Any, path: str, depth: int) -> list[tuple[str, Any, BaseException]]:
    """The parts from ``value`` down to the smallest one that still fails to pickle."""
    try:
        pickled(value)
    except Exception as exc:  # noqa: BLE001 - any error of pickling is what is being looked for
        error: BaseException = exc
    else:
        return []
    here = [(path, value, error)]
    if depth >= _SEARCH_DEPTH:
        return here
    for sub_path, part in _parts(value, path):
        below = _failing_chain(part, sub_path, depth + 1)
        if below:
            return here + below
    return here


def _parts(value: Any, path: str) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f"{path}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value)]
    if isinstance(value, dict):
        return [(f"{path}[{key!r}]", item) for key, item in value.items()]
    if isinstance(value, (list, tuple)):
        return [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    return []


def _name_of(path: str) -> str:
    """``result.fields['lock'].value`` → ``field 'lock'``; other paths as they are."""
    if path.startswith("result.fields["):
        return "field " + path[len("result.fields["):].split("]", 1)[0]
    if path.startswith("result[") and "]" in path:  # an ingest's list of page tasks
        return "page task " + path[len("result["):].split("]", 1)[0]
    return path


__all__ = ["Channel", "LOG_MESSAGE_CHARS", "cut", "pickled", "unsendable"]
