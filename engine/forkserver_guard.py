"""SIGTERM ignored by the forkserver, as it ignores SIGINT (worker side).

A SIGTERM sent to the run's whole process group (``systemctl stop``, ``kill -TERM -PGID``,
``timeout``) reaches the forkserver, which the standard library lets die of it; every worker
forked from it then goes too, before the parent has decided anything. The parent handles SIGTERM
as a cancel (pages in flight finish within the grace period) and the forkserver ends by itself
once the run and its workers are gone, so it has no use for the signal.

Only the forkserver ignores it: every process it forks gets SIGTERM's default back. The
forkserver is the host's too (one per process), and a host's own processes started from it, a
``multiprocessing.Pool`` whose ``terminate()`` sends SIGTERM for one, must die of it. The
forkserver also blocks the signal, so a child is forked with it blocked and a SIGTERM sent before
the child has restored the default waits, pending, until it has (a signal that is ignored when it
arrives is lost). pagemill's workers then set their own signal handling (``engine.lifeline``).

The forkserver imports this module at its start (it is in ``engine.workerhandle.PRELOAD_MODULES``);
imported anywhere else it does nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def _imported_by_forkserver() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "main" and frame.f_globals.get("__name__") == "multiprocessing.forkserver":
            return True
        frame = frame.f_back
    return False


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


if threading.current_thread() is threading.main_thread() and _imported_by_forkserver():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    os.register_at_fork(after_in_child=_default_sigterm)
