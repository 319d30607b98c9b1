"""One run at a time per output folder: an exclusive ``flock`` on ``DIR/.pagemill.lock``.

Held from the moment the run's ledger is opened until it is closed. The operating system drops
the lock when the process ends in any way (kill -9 included), so a stale lock never blocks the
next run. The holder writes its pid into the file, for the refusal message. Reading commands
(status, runs, export) do not take it; ``held_by_a_run`` tells them whether a run holds it now
(a run still marked running in a folder nobody holds was killed).

A second run into a folder in use is refused before any work as a critical stop (exit 3, the
code for "the run cannot go on"), naming the folder and the pid holding it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import BinaryIO

from engine.errors import CriticalError

LOCK_NAME = ".pagemill.lock"
ACQUIRE_TRIES = 5  # a reader's look (held_by_a_run) holds the lock shared for a moment: try again
ACQUIRE_PAUSE = 0.02


class OutputFolderBusy(CriticalError):
    """Another run holds the output folder."""


class OutputLock:
    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        # a file object, not a bare descriptor: if its owner is dropped without release(), the
        # file is closed when collected and the lock goes with it
        self._file: BinaryIO | None = None

    def acquire(self) -> OutputLock:
        try:
            # not inherited by a program a plugin starts (Python opens files close-on-exec)
            handle = open(self.path, "a+b")
        except OSError as exc:
            raise CriticalError(f"output folder {self.out_dir} is not writable: {exc.strerror or exc}") from None
        for attempt in range(ACQUIRE_TRIES):
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if attempt + 1 < ACQUIRE_TRIES:
                    time.sleep(ACQUIRE_PAUSE)
                    continue
                holder = _read_pid(handle)
                handle.close()
                who = f"pid {holder}" if holder else "another process"
                raise OutputFolderBusy(f"output folder {self.out_dir} is in use by another pagemill run ({who}); "
                                       f"wait for it to end, or use another --out") from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return self

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            finally:
                handle.close()


def held_by_a_run(out_dir: str | Path) -> bool | None:
    """Whether a run holds the folder's lock now; None when it cannot be told (the lock file cannot
    be read). Looks without writing: a shared lock, taken and dropped at once, fails only while a
    run holds the exclusive one."""
    try:
        handle = open(Path(out_dir) / LOCK_NAME, "rb")
    except FileNotFoundError:
        return False
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def _read_pid(handle: BinaryIO) -> str:
    try:
        handle.seek(0)
        text = handle.read(32).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
