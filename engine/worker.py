"""The main loop of a worker process.

A worker owns one slot of the shared progress counters and one pipe to the parent. It receives
``(seq, kind, payload)`` tasks (``kind`` is ``"ingest"`` or ``"page"``), runs them through its own
:class:`PagePipeline`, and answers ``(seq, kind, value)``:

- ``(seq, "pages", [PageTask, ...])`` for an ingested document,
- ``(seq, "result", PageResult)`` for a page,
- ``(seq, "failure", StageFailure)`` for either, when a stage raised,
- ``(-1, "ready", pid)`` once at start, ``(-1, "fatal", message)`` when it cannot start,
- ``(-1, "log", (level, message))`` for warnings it logged.

``(seq, "batch", [(seq, kind, payload), ...])`` carries several short tasks; it is answered by one
``(seq, "batch", [answer, ...])``. ``None`` asks it to stop. It never touches the terminal or the ledger.
"""

from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection
from typing import Any

from loguru import logger


def worker_main(conn: Connection, slot: int, counters: Any, specs: list[Any], config: Any) -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"  # several single-threaded tesseracts beat one threaded
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides about cancellation
    logger.remove()
    logger.add(lambda message: _forward_log(conn, message), level="WARNING", format="{message}")

    from engine.pipeline import PagePipeline
    from engine.progress import SlotWriter
    from engine.registry import PluginRegistry

    writer = SlotWriter(counters, slot)
    try:
        registry = PluginRegistry.from_specs(specs)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        conn.send((-1, "fatal", f"{type(exc).__name__}: {exc}"))
        return

    def listener(stage: str, busy_ns: int, failed: bool) -> None:
        writer.stage_finished(stage, busy_ns, failed)

    pipeline = PagePipeline(registry, config, listener, writer.stage_started)
    conn.send((-1, "ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        seq, kind, payload = message
        if kind == "batch":
            answer: tuple[int, str, Any] = (seq, "batch", [_run_task(pipeline, writer, *task) for task in payload])
        else:
            answer = _run_task(pipeline, writer, seq, kind, payload)
        try:
            conn.send(answer)
        except (BrokenPipeError, EOFError, OSError):
            return


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
