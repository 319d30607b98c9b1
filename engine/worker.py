"""The main loop of a worker process.

A worker owns one slot of the shared progress counters and one pipe to the parent. It keeps the
tasks it was sent in a local queue and runs them in the order sent. Before it starts each task it
reads every message waiting in the pipe, so a task the parent took back is never started.

Messages from the parent:

- ``("tasks", [(seq, kind, payload, blocked, trial), ...])``: tasks to run (``kind`` is
  ``"ingest"`` or ``"page"``; ``blocked`` and ``trial`` are call bits of :mod:`engine.gates`);
  several short tasks may come in one message, each is answered on its own as it finishes;
- ``("revoke", [seq, ...])``: give these back if not started; each one still waiting is answered
  ``(seq, "revoked", None, 0, -1)``, one already started is simply finished and answered;
- ``None``: stop.

Answers ``(seq, kind, value, called, failed)``, where ``called`` holds the bits of the plugin
calls that returned and ``failed`` the index of the call that raised (-1: none):

- ``(seq, "pages", [PageTask, ...], ...)`` for an ingested document,
- ``(seq, "result", PageResult, ...)`` for a page,
- ``(seq, "failure", StageFailure, ...)`` for either, when a stage raised;

and ``(-1, "ready", (pid, call_table))`` once at start, ``(-1, "fatal", message)`` when it cannot
start, ``(-1, "log", (level, message))`` for warnings it logged. It never touches the terminal or
the ledger, and it ends when the run's process ends (engine.lifeline).
"""

from __future__ import annotations

import os
import signal
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from loguru import logger

from engine.lifeline import bind_to_run

PendingTask = tuple[int, str, Any, int, int]


def worker_main(conn: Connection, slot: int, counters: Any, specs: list[Any], config: Any,
                run: tuple[int, float] | None = None, kill_with_parent: bool = False) -> None:
    bind_to_run(run, kill_with_parent)
    os.environ["OMP_THREAD_LIMIT"] = "1"  # several single-threaded tesseracts beat one threaded
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about cancellation
    logger.remove()
    logger.add(lambda message: _forward_log(conn, message), level="WARNING", format="{message}")

    from engine.gates import CallGate
    from engine.pipeline import PagePipeline
    from engine.progress import SlotWriter
    from engine.registry import PluginRegistry

    writer = SlotWriter(counters, slot)
    try:
        registry = PluginRegistry.from_specs(specs)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        conn.send((-1, "fatal", f"{type(exc).__name__}: {exc}"))
        return
    gate = CallGate(registry, writer)

    def listener(stage: str, busy_ns: int, failed: bool) -> None:
        writer.stage_finished(stage, busy_ns, failed)

    pipeline = PagePipeline(registry, config, listener, writer.stage_started)
    conn.send((-1, "ready", (os.getpid(), gate.keys)))
    pending: deque[PendingTask] = deque()
    try:
        while _receive(conn, pending, wait=not pending):
            if not pending:
                continue  # all it held was taken back
            seq, kind, payload, blocked, trial = pending.popleft()
            gate.begin(blocked, trial)
            answer = _run_task(pipeline, writer, seq, kind, payload)
            conn.send((*answer, gate.called, gate.failed))
    except (BrokenPipeError, EOFError, OSError):
        return


def _receive(conn: Connection, pending: deque[PendingTask], wait: bool) -> bool:
    """Read the messages waiting (and wait for one when ``wait``); False when told to stop."""
    while wait or conn.poll():
        wait = False
        message = conn.recv()
        if message is None:
            return False
        what, body = message
        if what == "tasks":
            pending.extend(body)
        elif what == "revoke":
            revoked = set(body)
            for task in pending:
                if task[0] in revoked:
                    conn.send((task[0], "revoked", None, 0, -1))
            kept = [task for task in pending if task[0] not in revoked]
            pending.clear()
            pending.extend(kept)
    return True


def _run_task(pipeline: Any, writer: Any, seq: int, kind: str, payload: Any) -> tuple[int, str, Any]:
    from engine.pipeline import StageError

    is_page = kind == "page"
    writer.page_started(seq, counts_as_page=is_page)
    try:
        if kind == "ingest":
            answer: tuple[int, str, Any] = (seq, "pages", pipeline.ingest(payload))
        else:
            answer = (seq, "result", pipeline.process(payload))
        errored = False
    except StageError as exc:
        answer = (seq, "failure", exc.failure)
        errored = True
    writer.page_finished(errored, counts_as_page=is_page)
    return answer


def _forward_log(conn: Connection, message: Any) -> None:
    record = message.record
    try:
        conn.send((-1, "log", (record["level"].name, record["message"])))
    except (BrokenPipeError, OSError):
        pass
