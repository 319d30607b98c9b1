"""One worker process as the parent sees it: its handle, its events, how it is started.

``spawn_worker`` starts ``engine.worker.worker_main`` in a new process with one end of a duplex
pipe, its progress slot and the run's identity (engine.lifeline); ``WorkerHandle`` is what the pool
knows of it (engine.pool), ``PoolEvent`` what the pool reports about it.
"""

from __future__ import annotations

import math
import multiprocessing.connection
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from engine.pagequeue import Task
from engine.progress import ProgressBoard
from engine.worker import worker_main

# imported once in the forkserver, so that every worker (and every recycled one) starts warm
PRELOAD_MODULES = [
    "engine.forkserver_guard", "engine.worker", "engine.pipeline", "engine.registry", "engine.progress", "engine.gates", "engine.lifeline",
    "psutil", "plugins.pdf_ingest", "plugins.tesseract_ocr", "plugins.template_extract", "plugins.ticket_validate",
    "pypdfium2", "PIL.Image", "PIL.JpegImagePlugin", "PIL.PngImagePlugin", "PIL.TiffImagePlugin",
]


@dataclass
class WorkerHandle:
    slot: int
    process: BaseProcess
    conn: multiprocessing.connection.Connection
    started_at: float
    in_flight: list[Task] = field(default_factory=list)
    revoking: dict[int, Task] = field(default_factory=dict)  # asked back, not answered yet
    tasks_done: int = 0
    ready: bool = False
    retiring: str = ""  # why it is being retired; "" when it is not
    stopping: bool = False  # the stop message was sent
    lost: bool = False  # a message to it failed: it is dead or dying
    long_tasks: int = 0  # tasks in flight whose cost is not known to be short
    short_seconds: float = 0.0  # expected seconds of the other tasks in flight
    final_in_hand: int = -1  # once dead: the task it had in hand
    final_plugin: int = -1  # once dead: the plugin call it was in
    exitcode: int | None = None  # once dead
    fault: str = ""  # why the pool ended it, when it failed (an unreadable message, no start in time)
    pid: int | None = None

    @property
    def running(self) -> Task | None:
        return self.in_flight[0] if self.in_flight else None

    @property
    def held(self) -> int:
        """Tasks that may still run on it."""
        return len(self.in_flight) + len(self.revoking)


@dataclass(frozen=True)
class PoolEvent:
    kind: str  # "message" or "died"
    worker: WorkerHandle
    message: Any = None
    exitcode: int | None = None


def spawn_worker(ctx: Any, slot: int, board: ProgressBoard, plugins: tuple[list[Any], Any],
                 run: tuple[int, float], kill_with_parent: bool) -> WorkerHandle:
    """Start a worker in ``slot``. ``kill_with_parent``: whether the kernel may end it with the
    thread that starts it (engine.lifeline says when that is safe)."""
    specs, config = plugins
    parent_conn, child_conn = ctx.Pipe(duplex=True)
    process = ctx.Process(
        target=worker_main,
        args=(child_conn, slot, board.array, specs, config, run, kill_with_parent),
        name=f"pagemill-worker-{slot}",
        daemon=True,
    )
    process.start()
    child_conn.close()
    return WorkerHandle(slot, process, parent_conn, time.monotonic(), pid=process.pid)


def hold(worker: Any, task: Task, held_by_rank: list[int]) -> None:
    """A task goes to a worker: it is in flight there, in its class, costed (engine.dispatch)."""
    worker.in_flight.append(task)
    held_by_rank[task.rank] += 1
    if task.cost == math.inf:
        worker.long_tasks += 1
    else:
        worker.short_seconds += task.cost


def release(worker: Any, task: Task, held_by_rank: list[int]) -> None:
    """A task leaves a worker (finished, given up or taken back): the reverse of :func:`hold`."""
    worker.in_flight.remove(task)
    held_by_rank[task.rank] -= 1
    if task.cost == math.inf:
        worker.long_tasks -= 1
    else:
        worker.short_seconds = max(0.0, worker.short_seconds - task.cost) if worker.in_flight else 0.0


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker vanished"
    if exitcode < 0:
        try:
            return f"worker killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"worker killed by signal {-exitcode}"
    return f"worker exited with code {exitcode}"
