"""Worker processes of our own: start, stop, resize, recycle, per-page deadline, crash detection.

One ``Process`` and one ``Pipe`` per worker, from an explicit multiprocessing context
(forkserver by default). The parent waits with ``multiprocessing.connection.wait()`` on every pipe
*and* every process sentinel, so a worker that dies is noticed at once, and it knows exactly which
tasks each worker holds (``WorkerHandle.in_flight``, in the order sent: the first one is running).
A worker holds at most ``depth`` tasks (the one it runs and one waiting), so none idles between
pages while priorities stay responsive.

This module is the mechanism. What to run next is the scheduler's business, how many workers to
keep is the scaling policy's (engine.scaling); the pool only applies a target it is given.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

import psutil
from loguru import logger

from engine.pagequeue import Task
from engine.progress import ProgressBoard
from engine.worker import worker_main

# imported once in the forkserver, so that every worker (and every recycled one) starts warm
PRELOAD_MODULES = [
    "engine.worker", "engine.pipeline", "engine.registry", "engine.progress",
    "plugins.pdf_ingest", "plugins.tesseract_ocr", "plugins.template_extract", "plugins.ticket_validate",
    "pypdfium2", "PIL.Image", "PIL.JpegImagePlugin", "PIL.PngImagePlugin", "PIL.TiffImagePlugin",
]


@dataclass
class WorkerHandle:
    slot: int
    process: BaseProcess
    conn: multiprocessing.connection.Connection
    started_at: float
    in_flight: list[Task] = field(default_factory=list)
    messages: int = 0  # messages sent (a task or a batch of tasks) and not yet answered
    tasks_done: int = 0
    ready: bool = False
    retiring: str = ""  # why it is being retired; "" when it is not
    stopping: bool = False  # the stop message was sent

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def running(self) -> Task | None:
        return self.in_flight[0] if self.in_flight else None


@dataclass(frozen=True)
class PoolEvent:
    kind: str  # "message" or "died"
    worker: WorkerHandle
    message: Any = None
    exitcode: int | None = None


class WorkerPool:
    """Starts, feeds, watches, recycles and stops worker processes."""

    max_batch = 32  # tasks one message may carry (engine.scheduler decides how many it does)

    def __init__(
        self,
        plugin_specs: list[Any],
        config: Any,
        max_workers: int,
        context: str = "forkserver",
        depth: int = 2,
    ) -> None:
        self.ctx = multiprocessing.get_context(context)
        if context == "forkserver":
            self.ctx.set_forkserver_preload(PRELOAD_MODULES)
        self.plugin_specs = plugin_specs
        self.config = config
        self.depth = depth
        self.board = ProgressBoard(max(2, max_workers * 2 + 1), self.ctx)
        self.workers: dict[int, WorkerHandle] = {}  # by slot
        self.target = 0
        self.peak_workers = 0
        self.workers_started = 0

    # ------------------------------------------------------------------ sizing
    @property
    def live(self) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if not w.retiring]

    def resize(self, target: int, reason: str) -> None:
        """Apply a target worker count: start workers, or retire idle ones first."""
        if target != self.target:
            logger.info("workers {} → {}: {}", self.target, target, reason)
        self.target = target
        live = self.live
        for _ in range(target - len(live)):
            self.start_worker()
        if len(live) > target:
            for worker in sorted(live, key=lambda w: len(w.in_flight))[: len(live) - target]:
                self.retire(worker, reason)

    def start_worker(self) -> WorkerHandle:
        slot = next(s for s in range(self.board.n_slots) if s not in self.workers)
        self.board.clear_in_hand(slot)
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        process = self.ctx.Process(
            target=worker_main,
            args=(child_conn, slot, self.board.array, self.plugin_specs, self.config),
            name=f"pagemill-worker-{slot}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        worker = WorkerHandle(slot, process, parent_conn, time.monotonic())
        self.workers[slot] = worker
        self.workers_started += 1
        self.peak_workers = max(self.peak_workers, len(self.live))
        return worker

    def retire(self, worker: WorkerHandle, reason: str) -> None:
        """No new work for this worker; it stops once its tasks are done."""
        if not worker.retiring:
            worker.retiring = reason or "retired"
            logger.debug("retiring worker {} (pid {}): {}", worker.slot, worker.pid, worker.retiring)
        self._stop_if_idle(worker)

    def _stop_if_idle(self, worker: WorkerHandle) -> None:
        if worker.retiring and not worker.in_flight and not worker.stopping:
            worker.stopping = True
            try:
                worker.conn.send(None)
            except (BrokenPipeError, OSError):
                pass

    # ----------------------------------------------------------------- feeding
    def free_capacity(self) -> list[WorkerHandle]:
        """Workers that can take another task now, the emptiest first."""
        ready = [w for w in self.live if w.ready and w.messages < self.depth]
        return sorted(ready, key=lambda w: w.messages)

    def send(self, worker: WorkerHandle, task: Task) -> None:
        worker.in_flight.append(task)
        worker.messages += 1
        worker.conn.send((task.seq, task.kind, task.payload))

    def send_batch(self, worker: WorkerHandle, tasks: list[Task]) -> None:
        """Several short tasks in one message, answered in one message: less IPC per page."""
        if len(tasks) == 1:
            self.send(worker, tasks[0])
            return
        worker.in_flight.extend(tasks)
        worker.messages += 1
        worker.conn.send((tasks[0].seq, "batch", [(t.seq, t.kind, t.payload) for t in tasks]))

    def tasks_before_recycle(self, worker: WorkerHandle) -> int:
        """How many more tasks the worker may be given before it is recycled (a large number when never)."""
        limit = self.config.max_pages_per_worker
        return max(1, limit - worker.tasks_done - len(worker.in_flight)) if limit else 1 << 30

    def answered(self, worker: WorkerHandle) -> None:
        """A message of the worker's (a task or a batch) has been answered."""
        worker.messages = max(0, worker.messages - 1)

    def busy_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.in_flight)

    def in_flight_count(self) -> int:
        return sum(len(w.in_flight) for w in self.workers.values())

    # ---------------------------------------------------------------- watching
    def wait(self, timeout: float) -> list[PoolEvent]:
        """Messages from workers and deaths of workers, waiting at most ``timeout`` seconds."""
        if not self.workers:
            time.sleep(max(0.0, min(timeout, 0.05)))
            return []
        by_conn = {w.conn: w for w in self.workers.values()}
        by_sentinel = {w.process.sentinel: w for w in self.workers.values()}
        ready = multiprocessing.connection.wait(list(by_conn) + list(by_sentinel), timeout=max(0.0, timeout))
        events: list[PoolEvent] = []
        dead: list[WorkerHandle] = []
        for item in ready:
            if item in by_conn:
                worker = by_conn[item]
                events.extend(self._drain(worker))
            else:
                dead.append(by_sentinel[item])
        for worker in dead:
            if worker.slot not in self.workers:
                continue
            events.extend(self._drain(worker))  # results it sent before it died are kept
            worker.process.join(timeout=1)
            del self.workers[worker.slot]
            worker.conn.close()
            if not worker.stopping:
                events.append(PoolEvent("died", worker, exitcode=worker.process.exitcode))
            else:
                # a clean stop still reports the tasks it held, so none is lost
                if worker.in_flight:
                    events.append(PoolEvent("died", worker, exitcode=worker.process.exitcode))
        return events

    def _drain(self, worker: WorkerHandle) -> list[PoolEvent]:
        events = []
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                events.append(PoolEvent("message", worker, message))
        except (EOFError, OSError):
            pass
        return events

    def complete(self, worker: WorkerHandle, seq: int) -> Task | None:
        """Take the task ``seq`` off the worker; retire it when it has done enough."""
        for index, task in enumerate(worker.in_flight):
            if task.seq == seq:
                del worker.in_flight[index]
                break
        else:
            return None
        worker.tasks_done += 1
        limit = self.config.max_pages_per_worker
        if limit and worker.tasks_done >= limit and not worker.retiring:
            self.retire(worker, f"recycled after {worker.tasks_done} tasks")
        self._stop_if_idle(worker)
        return task

    def overdue(self, timeout: float) -> list[tuple[WorkerHandle, Task, float]]:
        """Workers whose running task has run past ``timeout`` seconds."""
        now_ns = time.monotonic_ns()
        found = []
        for worker in self.workers.values():
            seq, started_ns = self.board.in_hand(worker.slot)
            if seq < 0 or not worker.in_flight:
                continue
            running = next((t for t in worker.in_flight if t.seq == seq), None)
            elapsed = (now_ns - started_ns) / 1e9
            if running is not None and elapsed > timeout:
                found.append((worker, running, elapsed))
        return found

    def running_task(self, worker: WorkerHandle) -> Task | None:
        """The task the worker had in hand (per its progress slot), if any."""
        seq, _ = self.board.in_hand(worker.slot)
        return next((t for t in worker.in_flight if t.seq == seq), None)

    def kill(self, worker: WorkerHandle, reason: str) -> None:
        logger.debug("killing worker {} (pid {}): {}", worker.slot, worker.pid, reason)
        worker.retiring = worker.retiring or reason
        try:
            worker.process.kill()
        except (OSError, AttributeError):
            pass

    def check_memory(self, limit_mb: float) -> dict[int, float]:
        """RSS of each worker in MB; a worker past ``limit_mb`` is recycled after its tasks."""
        sizes: dict[int, float] = {}
        for worker in list(self.workers.values()):
            try:
                rss = psutil.Process(worker.pid).memory_info().rss / 2**20
            except (psutil.Error, TypeError):
                continue
            sizes[worker.slot] = rss
            if limit_mb and rss > limit_mb and not worker.retiring:
                self.retire(worker, f"recycled: RSS {rss:.0f} MB > {limit_mb:.0f} MB")
        return sizes

    # ---------------------------------------------------------------- stopping
    def shutdown(self, grace: float = 5.0) -> None:
        for worker in list(self.workers.values()):
            worker.retiring = worker.retiring or "shutdown"
            if not worker.stopping:
                worker.stopping = True
                try:
                    worker.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        deadline = time.monotonic() + grace
        for worker in list(self.workers.values()):
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=2)
            worker.conn.close()
        self.workers.clear()

    def terminate(self) -> None:
        for worker in list(self.workers.values()):
            try:
                worker.process.kill()
            except OSError:
                pass
        for worker in list(self.workers.values()):
            worker.process.join(timeout=2)
            worker.conn.close()
        self.workers.clear()


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker vanished"
    if exitcode < 0:
        try:
            return f"worker killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"worker killed by signal {-exitcode}"
    return f"worker exited with code {exitcode}"
