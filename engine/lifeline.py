"""A worker never outlives the run that started it (worker side).

When the run's process dies without stopping its workers (kill -9, an OOM kill), a worker busy
in a hung plugin would run on forever under PID 1, and with the forkserver context it would keep
the forkserver alive too (every worker holds the forkserver's liveness pipe). Two guards:

- on Linux, ``prctl(PR_SET_PDEATHSIG)``: the kernel signals the worker when the thread that
  forked it dies. That thread is the forkserver's main thread with the forkserver context, or the
  run's thread that started the worker with fork or spawn, which is only safe to rely on when it
  is the main thread (a worker started from a job thread must outlive that thread), so the pool
  asks for it only then. The signal is a real-time one whose handler ends the worker's process
  group; left unhandled it still ends the worker;
- a watchdog thread (the main thread may be stuck in a plugin) that checks twice a second that
  the run's process, known by pid and start time, is still alive, and ends the worker's process
  group when not.

Each worker leads a process group of its own (``lead_own_group``, a new session: no terminal's
job control reaches it), and the programs its plugins start (tesseract, a shell) are in it: the
parent ends a worker with ``end_group`` + SIGKILL (engine.pool), and a worker that ends with the
run takes them along. The descriptors a worker inherits (its pipe, the forkserver's liveness pipe,
the resource tracker's pipe) are made non-inheritable, so a program a plugin starts never keeps
the forkserver or the resource tracker alive after the run.

A worker leaves SIGINT and SIGTERM to the parent (``leave_stop_signals_to_parent``): a handler
that does nothing rather than SIG_IGN, which the programs it starts would inherit.
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
RUN_DIED_SIGNAL = signal.SIGRTMIN + 5 if hasattr(signal, "SIGRTMIN") else signal.SIGKILL


def run_identity() -> tuple[int, float]:
    """(pid, start time) of the calling process, for ``bind_to_run`` in its workers."""
    pid = os.getpid()
    try:
        return pid, psutil.Process(pid).create_time()
    except psutil.Error:
        return pid, 0.0


def lead_own_group() -> None:
    """Make this process the leader of a new session and process group, and keep the descriptors
    it inherited from the programs it starts (see the module docstring)."""
    try:
        os.setsid()
    except OSError:
        pass  # already a group leader: the parent then kills the worker alone
    try:
        descriptors = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in descriptors:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own descriptor, closed by now


def leave_stop_signals_to_parent() -> None:
    """SIGINT and SIGTERM do nothing to a worker: the parent decides (it ends workers with SIGKILL)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _ignored)


def _ignored(signum: int, frame: object) -> None:
    return None


def end_group() -> None:
    """End this worker and every process of its group (when it leads one) at once."""
    if os.getpgrp() == os.getpid():
        try:
            os.killpg(os.getpid(), signal.SIGKILL)
        except OSError:
            pass
    os._exit(1)


def kill_group(pid: int | None) -> None:
    """SIGKILL to the process group a worker ``pid`` leads, when there is one (the parent's side).
    Only a group whose id is the worker's own pid: never the run's own group."""
    if not pid or pid == os.getpgrp():
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass  # no such group: the worker never led one, or it is gone with everything in it


def bind_to_run(run: tuple[int, float] | None, kill_with_parent: bool) -> None:
    """Make this worker end when the run's process ends (see the module docstring)."""
    if kill_with_parent and sys.platform.startswith("linux"):
        _set_parent_death_signal()
    if run is not None:
        threading.Thread(target=_watch, args=run, name="pagemill-lifeline", daemon=True).start()


def _set_parent_death_signal() -> None:
    if RUN_DIED_SIGNAL != signal.SIGKILL:
        signal.signal(RUN_DIED_SIGNAL, lambda signum, frame: end_group())
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(RUN_DIED_SIGNAL), 0, 0, 0)
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
            end_group()


__all__ = ["bind_to_run", "end_group", "kill_group", "lead_own_group", "leave_stop_signals_to_parent",
           "run_identity", "run_is_alive"]
