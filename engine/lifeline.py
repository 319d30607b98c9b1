"""A worker never outlives the run that started it (worker side).

When the run's process dies without stopping its workers (kill -9, an OOM kill), a worker busy
in a hung plugin would run on forever under PID 1, and with the forkserver context it would keep
the forkserver alive too (every worker holds the forkserver's liveness pipe). Two guards:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker when the thread
  that forked it dies. That thread is the forkserver's main thread with the forkserver context,
  or the run's thread that started the worker with fork or spawn, which is only safe to rely on
  when it is the main thread (a worker started from a job thread must outlive that thread), so
  the pool asks for it only then;
- a watchdog thread (the main thread may be stuck in a plugin) that checks twice a second that
  the run's process, known by pid and start time, is still alive, and ends the worker when not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

import psutil

PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5


def run_identity() -> tuple[int, float]:
    """(pid, start time) of the calling process, for ``bind_to_run`` in its workers."""
    pid = os.getpid()
    try:
        return pid, psutil.Process(pid).create_time()
    except psutil.Error:
        return pid, 0.0


def bind_to_run(run: tuple[int, float] | None, kill_with_parent: bool) -> None:
    """Make this worker end when the run's process ends (see the module docstring)."""
    if kill_with_parent and sys.platform.startswith("linux"):
        _set_parent_death_signal()
    if run is not None:
        threading.Thread(target=_watch, args=run, name="pagemill-lifeline", daemon=True).start()


def _set_parent_death_signal() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watchdog still guards


def run_is_alive(pid: int, started: float) -> bool:
    """Whether the process ``pid`` that started at ``started`` (0: unknown) still runs."""
    try:
        process = psutil.Process(pid)
        if started and abs(process.create_time() - started) > 0.01:
            return False  # the pid was reused
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _watch(pid: int, started: float) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if not run_is_alive(pid, started):
            os._exit(1)


__all__ = ["bind_to_run", "run_identity", "run_is_alive"]
