"""Files that appear whole or not at all: written under a temporary name, moved into place.

A temporary file sits beside its target as ``.NAME.PID.XXXXXXXX.tmp`` (the writer's pid, 8 hex
digits). A writer killed before the move (kill -9, out of memory) leaves it behind; the next
writer of the same name removes those whose pid is no longer alive (``remove_stale``), so a
folder never collects them. A temporary of a live process, this one included, is left alone.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from loguru import logger

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")

__all__ = ["Pending", "atomic_file", "remove_stale", "replaced_together", "temporary_path"]


def temporary_path(path: Path) -> Path:
    """A new temporary name beside ``path``, owned by this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts)."""
    if pid <= 0:
        return True  # not a pid a writer had: never taken for a dead one
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale(folder: Path, names: Iterable[str]) -> int:
    """Remove the temporaries of ``names`` in ``folder`` left by processes that are gone; returns
    how many. A file that cannot be removed is left (the next writer tries again)."""
    wanted = set(names)
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or match["name"] not in wanted or pid_alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed += 1
        except OSError:
            pass
    if removed:
        logger.info("{}: removed {} temporary {} left by a process that is gone", folder, removed,
                    "file" if removed == 1 else "files")
    return removed


class Pending:
    """A file written under a temporary name next to ``path``, moved into place by ``commit``.

    The temporary file is created like any other (the umask applies), so the result has the usual
    permissions."""

    def __init__(self, path: Path, mode: str = "w", encoding: str = "utf-8") -> None:
        self.path = path
        self.temporary = temporary_path(path)
        options: dict[str, Any] = {"encoding": encoding, "newline": ""} if "b" not in mode else {}
        try:
            self.handle: IO[Any] = open(self.temporary, mode.replace("w", "x"), **options)
        except OSError as exc:  # named by the file the user asked for, not the temporary one
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None

    def finish(self) -> None:
        """Write out and sync the whole file (where a full disk shows)."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    def commit(self) -> None:
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        try:
            self.handle.close()
        except OSError:
            pass  # a buffer that cannot be written out: the file goes anyway
        self.temporary.unlink(missing_ok=True)


def _clean_before(paths: Iterable[Path]) -> None:
    by_folder: dict[Path, set[str]] = {}
    for path in paths:
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, names in by_folder.items():
        remove_stale(folder, names)


@contextmanager
def replaced_together(targets: Sequence[tuple[Path, str]]) -> Iterator[list[Pending]]:
    """Temporary files for ``targets`` (path, text encoding); all moved into place once every one
    is complete, none if the block or any write raises."""
    _clean_before(path for path, _ in targets)
    pending: list[Pending] = []
    try:
        for path, encoding in targets:
            pending.append(Pending(path, encoding=encoding))
        yield pending
        for item in pending:
            item.finish()
    except BaseException:
        for item in pending:
            item.discard()
        raise
    for item in pending:
        item.commit()


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file that appears at ``path`` only once it is complete (temporary file + ``os.replace``);
    removed if the block raises."""
    _clean_before([path])
    item = Pending(path, mode)
    try:
        yield item.handle
        item.finish()
    except BaseException:
        item.discard()
        raise
    item.commit()
