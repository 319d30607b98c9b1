"""Running pages on a Dask cluster (``pip install 'pagemill[dask]'``).

``--executor dask --scheduler tcp://HOST:8786`` uses an existing cluster; ``--executor
dask-local`` starts a ``LocalCluster`` that adapts between the worker bounds. The parent keeps
the scheduler, the deadlines, the retries, the breakers and the ledger exactly as with the local
pool: :class:`DaskPool` only replaces the worker processes. Each task is a Dask future with the
page's priority (higher first in Dask, so urgent pages get the highest number); plugins reach the
workers as the same picklable specs our own workers use, and a plugin that cannot be imported on a
worker is a critical error naming it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from engine.errors import ConfigError
from engine.pagequeue import Task
from engine.pool import PoolEvent
from engine.progress import ProgressBoard, SlotWriter
from engine.records import STAGES

_PIPELINES: dict[str, Any] = {}


def run_remote(specs_blob: bytes, config: Any, seq: int, kind: str, payload: Any) -> tuple[int, str, Any]:
    """Runs on a Dask worker: one task through a pipeline cached per worker process."""
    from engine.pipeline import PagePipeline, StageError
    from engine.registry import PluginRegistry

    key = hashlib.sha256(specs_blob).hexdigest() + repr(config)
    pipeline = _PIPELINES.get(key)
    if pipeline is None:
        try:
            registry = PluginRegistry.from_specs(pickle.loads(specs_blob))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
            return (seq, "fatal", f"{type(exc).__name__}: {exc}")
        pipeline = PagePipeline(registry, config)
        _PIPELINES[key] = pipeline
    try:
        if kind == "ingest":
            return (seq, "pages", pipeline.ingest(payload))
        return (seq, "result", pipeline.process(payload))
    except StageError as exc:
        return (seq, "failure", exc.failure)


@dataclass
class DaskSlot:
    """A place for one task on the cluster, so the scheduler's bookkeeping stays the same."""

    slot: int
    in_flight: list[Task] = field(default_factory=list)
    futures: dict[int, Any] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    tasks_done: int = 0
    ready: bool = True
    retiring: str = ""
    stopping: bool = False
    pid: int | None = None

    @property
    def running(self) -> Task | None:
        return self.in_flight[0] if self.in_flight else None

    @property
    def messages(self) -> int:
        return len(self.in_flight)


class DaskPool:
    depth = 1
    max_batch = 1  # every page is its own Dask task

    def __init__(self, plugin_specs: list[Any], config: Any) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("the dask executor needs: pip install 'pagemill[dask]'") from None
        self.config = config
        low, high = config.worker_bounds()
        self.cluster = None
        if config.executor == "dask-local":
            self.cluster = LocalCluster(n_workers=low, threads_per_worker=1, processes=True, dashboard_address=None)
            self.cluster.adapt(minimum=low, maximum=high)
            self.client = Client(self.cluster)
        else:
            self.client = Client(config.scheduler_address, timeout="10s")
        self.specs_blob = self.client.scatter(pickle.dumps(plugin_specs), broadcast=True)
        self.board = ProgressBoard(max(2, high * 2 + 1), multiprocessing.get_context("spawn"))
        self.workers: dict[int, DaskSlot] = {}
        self.target = 0
        self.peak_workers = 0
        self._killed: list[DaskSlot] = []

    # ------------------------------------------------------------------ sizing
    @property
    def live(self) -> list[DaskSlot]:
        return [w for w in self.workers.values() if not w.retiring]

    def resize(self, target: int, reason: str) -> None:
        if target != self.target:
            logger.info("dask slots {} → {}: {}", self.target, target, reason)
        self.target = target
        while len(self.live) < target:
            slot = next(s for s in range(self.board.n_slots) if s not in self.workers)
            self.workers[slot] = DaskSlot(slot)
        for worker in [w for w in self.live if not w.in_flight][: max(0, len(self.live) - target)]:
            del self.workers[worker.slot]
        self.peak_workers = max(self.peak_workers, len(self.live))

    def free_capacity(self) -> list[DaskSlot]:
        return [w for w in self.live if len(w.in_flight) < self.depth]

    def busy_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.in_flight)

    def in_flight_count(self) -> int:
        return sum(len(w.in_flight) for w in self.workers.values())

    # ----------------------------------------------------------------- feeding
    def send(self, worker: DaskSlot, task: Task) -> None:
        future = self.client.submit(
            run_remote, self.specs_blob, self.config, task.seq, task.kind, task.payload,
            key=f"pagemill-{task.seq}-{task.attempts}-{time.monotonic_ns()}", pure=False,
            priority=10 * (4 - task.rank) + (1 if task.kind == "ingest" else 0),
        )
        worker.in_flight.append(task)
        worker.futures[task.seq] = future
        worker.started[task.seq] = time.monotonic()

    def send_batch(self, worker: DaskSlot, tasks: list[Task]) -> None:
        for task in tasks:
            self.send(worker, task)

    def tasks_before_recycle(self, worker: DaskSlot) -> int:
        return 1

    def answered(self, worker: DaskSlot) -> None:
        """Answers are per future; nothing to count."""

    def wait(self, timeout: float) -> list[PoolEvent]:
        from distributed import wait as dask_wait

        events: list[PoolEvent] = [PoolEvent("died", w, exitcode=None) for w in self._killed]
        self._killed.clear()
        pending = {f: w for w in self.workers.values() for f in w.futures.values()}
        if not pending:
            time.sleep(min(timeout, 0.05))
            return events
        try:
            done, _ = dask_wait(list(pending), timeout=max(0.01, timeout), return_when="FIRST_COMPLETED")
        except Exception:  # noqa: BLE001 - distributed raises its own TimeoutError flavours
            return events
        for future in done:
            worker = pending[future]
            if future.status == "finished":
                message = future.result()
                events.append(PoolEvent("message", worker, message))
                self._count(worker, message)
            else:
                seq = next(s for s, f in worker.futures.items() if f is future)
                worker.futures.pop(seq, None)
                events.append(PoolEvent("died", worker, exitcode=None))
        return events

    def _count(self, worker: DaskSlot, message: tuple[int, str, Any]) -> None:
        seq, kind, value = message
        writer = SlotWriter(self.board.array, worker.slot)  # the parent is this slot's only writer
        writer.page_started(seq)
        if kind == "result":
            for stage, seconds in value.stage_seconds.items():
                if stage in STAGES:
                    writer.stage_finished(stage, int(seconds * 1e9), False)
        writer.page_finished(kind == "failure")

    def complete(self, worker: DaskSlot, seq: int) -> Task | None:
        worker.futures.pop(seq, None)
        worker.started.pop(seq, None)
        for index, task in enumerate(worker.in_flight):
            if task.seq == seq:
                del worker.in_flight[index]
                worker.tasks_done += 1
                return task
        return None

    def overdue(self, timeout: float) -> list[tuple[DaskSlot, Task, float]]:
        now = time.monotonic()
        return [
            (w, w.in_flight[0], now - w.started[w.in_flight[0].seq])
            for w in self.workers.values()
            if w.in_flight and w.in_flight[0].seq in w.started and now - w.started[w.in_flight[0].seq] > timeout
        ]

    def running_task(self, worker: DaskSlot) -> Task | None:
        return worker.running

    def kill(self, worker: DaskSlot, reason: str) -> None:
        """Give up on the slot's task: cancel its future; the scheduler sees a dead worker."""
        self.client.cancel(list(worker.futures.values()), force=True)
        worker.futures.clear()
        if worker.slot in self.workers:
            del self.workers[worker.slot]
        self._killed.append(worker)

    def check_memory(self, limit_mb: float) -> dict[int, float]:
        return {}

    # ---------------------------------------------------------------- stopping
    def terminate(self) -> None:
        for worker in list(self.workers.values()):
            self.client.cancel(list(worker.futures.values()), force=True)
            worker.futures.clear()
            worker.in_flight.clear()
        self.workers.clear()

    def shutdown(self, grace: float = 5.0) -> None:
        self.terminate()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
