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

Every message is pickled before it is written and written whole under one lock (engine.wire): a
plugin thread that logs never corrupts an answer, and an answer that cannot be pickled becomes a
permanent failure of its page naming what could not be sent, written before the page counts as
finished. The worker leads a process group of its own, so the parent can end it together with
the programs its plugins started (engine.lifeline); it leaves SIGINT and SIGTERM to the parent,
which ends a worker with SIGKILL.
"""

from __future__ import annotations

import os
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from loguru import logger

from engine.lifeline import bind_to_run, lead_own_group, leave_stop_signals_to_parent
from engine.wire import Channel, cut, pickled, unsendable

PendingTask = tuple[int, str, Any, int, int]


def worker_main(conn: Connection, slot: int, counters: Any, specs: list[Any], config: Any,
                run: tuple[int, float] | None = None, kill_with_parent: bool = False) -> None:
    lead_own_group()
    bind_to_run(run, kill_with_parent)
    os.environ["OMP_THREAD_LIMIT"] = "1"  # several single-threaded tesseracts beat one threaded
    leave_stop_signals_to_parent()
    channel = Channel(conn)
    logger.remove()
    logger.add(lambda message: _forward_log(channel, message), level="WARNING", format="{message}")

    from engine.gates import CallGate
    from engine.pipeline import PagePipeline
    from engine.progress import SlotWriter
    from engine.registry import PluginRegistry

    writer = SlotWriter(counters, slot)
    try:
        registry = PluginRegistry.from_specs(specs)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        channel.send((-1, "fatal", cut(f"{type(exc).__name__}: {exc}")))
        return
    gate = CallGate(registry, writer)

    def listener(stage: str, busy_ns: int, failed: bool) -> None:
        writer.stage_finished(stage, busy_ns, failed)

    pipeline = PagePipeline(registry, config, listener, writer.stage_started)
    channel.send((-1, "ready", (os.getpid(), gate.keys)))
    pending: deque[PendingTask] = deque()
    try:
        while _receive(channel, pending, wait=not pending):
            if not pending:
                continue  # all it held was taken back
            seq, kind, payload, blocked, trial = pending.popleft()
            gate.begin(blocked, trial)
            channel.send_bytes(_run_task(pipeline, writer, gate, seq, kind, payload))
    except (BrokenPipeError, EOFError, OSError):
        return


def _receive(channel: Channel, pending: deque[PendingTask], wait: bool) -> bool:
    """Read the messages waiting (and wait for one when ``wait``); False when told to stop."""
    while wait or channel.poll():
        wait = False
        message = channel.recv()
        if message is None:
            return False
        what, body = message
        if what == "tasks":
            pending.extend(body)
        elif what == "revoke":
            revoked = set(body)
            for task in pending:
                if task[0] in revoked:
                    channel.send((task[0], "revoked", None, 0, -1))
            kept = [task for task in pending if task[0] not in revoked]
            pending.clear()
            pending.extend(kept)
    return True


def _run_task(pipeline: Any, writer: Any, gate: Any, seq: int, kind: str, payload: Any) -> bytes:
    """Run one task; its answer, pickled. The page counts as finished only once its answer is
    known to be sendable: one that is not is a failure of the page, counted as one."""
    from engine.pipeline import StageError

    is_page = kind == "page"
    writer.page_started(seq, counts_as_page=is_page)
    try:
        if kind == "ingest":
            answer: tuple[Any, ...] = (seq, "pages", pipeline.ingest(payload))
        else:
            answer = (seq, "result", pipeline.process(payload))
        errored = False
    except StageError as exc:
        answer = (seq, "failure", exc.failure)
        errored = True
    try:
        data = pickled((*answer, gate.called, gate.failed))
    except Exception:  # noqa: BLE001 - whatever stops pickling, the page fails and the worker lives
        data = _unsendable_answer(gate, answer, "ingest" if kind == "ingest" else "extract")
        errored = True
    writer.page_finished(errored, counts_as_page=is_page)
    return data


def _unsendable_answer(gate: Any, answer: tuple[Any, ...], stage: str) -> bytes:
    """A permanent failure of the task naming the part of its answer that cannot be pickled and
    the plugin that returned it."""
    from engine.pipeline import StageFailure
    from engine.records import ErrorInfo

    seq, _, value = answer
    try:
        what, call = unsendable(value, gate.owner_of)
    except Exception:  # noqa: BLE001 - describing it must not fail the worker either
        what, call = "it cannot be pickled", None
    plugin, hook = gate.keys[call] if call is not None else (None, "")
    if plugin:
        message = f"plugin {plugin}: {hook} returned a value that cannot be sent to the parent: {what}"
    else:
        message = f"the {'pages' if answer[1] == 'pages' else 'result'} cannot be sent to the parent: {what}"
    stage = {"pagemill_ingest": "ingest", "pagemill_ocr": "ocr", "pagemill_validate": "validate"}.get(hook, stage)
    failure = StageFailure(ErrorInfo("permanent", "PluginResultError", message, stage), plugin, hook, 0.0)
    try:
        return pickled((seq, "failure", failure, gate.called, call if call is not None else -1))
    except Exception:  # noqa: BLE001 - the plainest failure pickles
        plain = StageFailure(ErrorInfo("permanent", "PluginResultError", "the answer cannot be sent to the parent",
                                       stage), None, "", 0.0)
        return pickled((seq, "failure", plain, 0, -1))


def _forward_log(channel: Channel, message: Any) -> None:
    record = message.record
    try:
        channel.send((-1, "log", (record["level"].name, cut(str(record["message"])))))
    except Exception:  # noqa: BLE001 - a log line that cannot be sent is dropped, never fatal
        pass
