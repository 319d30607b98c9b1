"""Running pages on a Dask cluster (``pip install 'pagemill[dask]'``).

``--executor dask --scheduler tcp://HOST:8786`` uses an existing cluster; ``--executor
dask-local`` starts a ``LocalCluster``. The parent keeps the scheduler, the deadlines, the
retries, the breakers and the ledger exactly as with the local pool: :class:`DaskPool` only
replaces the worker processes. Each task is a Dask future with the page's priority (higher first
in Dask, so urgent pages get the highest number); plugins reach the workers as the same specs our
own workers use, and a plugin that cannot be imported on a worker is a critical error naming it.
Plugin objects are sent with cloudpickle, so a class defined in the host script (``__main__``,
which a Dask worker does not have) travels by value.

Sizing. pagemill sends Dask only as many tasks as it has slots (the backlog stays in the parent,
in priority order), so Dask's own ``adapt()``, which grows a cluster from the work queued *in
Dask*, would never see a backlog. pagemill's scaling policy drives the size instead:

- ``dask-local``: :meth:`DaskPool.resize` scales the ``LocalCluster`` to one single-threaded
  worker per slot, between the worker bounds, under the same CPU and memory checks as the local
  pool (the cluster runs on this machine); a cluster shrinks by retiring idle workers.
- ``dask`` (an existing cluster): the cluster's size is its owner's. ``--workers auto`` means 1 to
  the cluster's total threads, looked up again every few seconds as workers join and leave
  (:meth:`DaskPool.worker_bounds`), and the parent's CPU and memory do not limit it
  (:class:`ClusterProbe`): they say nothing about the Dask workers'.

A page's deadline starts when a Dask worker starts it (the task reports its start as a Dask
event), not when it is submitted: pages queued behind a slow one are not charged for the wait. A
page past its deadline is given up like a killed local worker, and its Dask worker is restarted
(through its nanny), since a running Dask task cannot be stopped otherwise.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import pickle
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from loguru import logger

from engine.errors import ConfigError, CriticalError
from engine.executors.dask_cluster import (
    LOCAL_CLUSTER_OPTIONS,
    ClusterProbe,
    ClusterThreads,
    LocalScaler,
    check_scheduler_address,
    shippable_specs,
)
from engine.executors.remote import plugin_fingerprint, run_remote
from engine.pagequeue import Task
from engine.pipeline import StageFailure
from engine.pool import PoolEvent
from engine.progress import ProgressBoard, SlotWriter
from engine.records import STAGES, ErrorInfo

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler, and to get it back once the connection drops
RESTART_TIMEOUT = 60.0


@dataclass
class DaskSlot:
    """A place for one task on the cluster, so the scheduler's bookkeeping stays the same."""

    slot: int
    in_flight: list[Task] = field(default_factory=list)
    futures: dict[int, Any] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)  # by seq: when a Dask worker started it
    address: dict[int, str] = field(default_factory=dict)  # by seq: the Dask worker running it
    given: dict[int, str] = field(default_factory=dict)  # by seq: the path as the user gave it
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
    time_bounded = False  # a slot holds one task: nothing waits behind another in it
    can_revoke = False  # Dask orders what it has not started by priority itself

    def __init__(self, plugin_specs: list[Any], config: Any) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("the dask executor needs: pip install 'pagemill[dask]'") from None
        self.config = config
        low, high = config.worker_bounds()
        specs = shippable_specs(plugin_specs)  # before any cluster starts: a refusal leaves nothing behind
        self.cluster = None
        self.address = "a local cluster"
        self.probe: Any = None  # the scheduler's own (this machine's CPU and memory) unless set
        self.threads: ClusterThreads | None = None  # --workers auto on an existing cluster: bounded by its threads
        self._scaler: LocalScaler | None = None
        if config.executor == "dask-local":
            self.cluster = LocalCluster(n_workers=low, **LOCAL_CLUSTER_OPTIONS)
            self.client = Client(self.cluster)
            self._scaler = LocalScaler(self.cluster)
        else:
            self.address = str(config.scheduler_address)
            check_scheduler_address(self.address)
            try:
                self.client = Client(self.address, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise CriticalError(f"cannot reach the dask scheduler at {self.address}: {exc}") from None
            self.probe = ClusterProbe()
            if str(config.workers).strip().lower() == "auto":
                self.threads = ClusterThreads(self.client, self.address)
                high = self.threads.capacity
        self.capacity = high  # the most slots at once (the progress board has room for them twice over)
        self.fingerprint = plugin_fingerprint(specs)
        self.specs_blob = pickle.dumps(specs)  # in every task: scattered data dies with a restarted worker
        self.topic = f"pagemill-started-{uuid.uuid4().hex}"
        self._starts: collections.deque[tuple[str, str, float]] = collections.deque()
        self.client.subscribe_topic(self.topic, self._on_start)
        self._tokens: dict[str, tuple[DaskSlot, int]] = {}
        self.board = ProgressBoard(max(2, high * 2 + 1), multiprocessing.get_context("spawn"))
        self.workers: dict[int, DaskSlot] = {}
        self.target = 0
        self.peak_workers = 0
        self.call_table: list[Any] | None = None  # Dask workers send no ready message: calls cannot be gated
        self._killed: list[DaskSlot] = []
        self._lost = ""  # why the cluster is out of reach, once it is
        self.workers_seen: set[str] = set()  # addresses of the Dask workers that started a task

    # ------------------------------------------------------------------ sizing
    @property
    def live(self) -> list[DaskSlot]:
        return [w for w in self.workers.values() if not w.retiring]

    def worker_bounds(self) -> tuple[int, int]:
        """(min, max) slots for the scaling policy. On an existing cluster under ``--workers
        auto``: 1 to the cluster's total threads (looked up again every CAPACITY_EVERY seconds,
        without waiting for the answer); otherwise the configured bounds."""
        if self.threads is None:
            return self.config.worker_bounds()
        if not self._lost:
            self.threads.look_up()
        return 1, max(1, min(self.threads.count, self.capacity))

    def resize(self, target: int, reason: str) -> None:
        if target != self.target:
            logger.info("dask slots {} → {}: {}", self.target, target, reason)
        self.target = target
        while len(self.live) < target:
            slot = next((s for s in range(self.board.n_slots) if s not in self.workers), None)
            if slot is None:  # every progress slot is held by a slot still winding down: later
                break
            self.workers[slot] = DaskSlot(slot)
        for worker in [w for w in self.live if not w.in_flight][: max(0, len(self.live) - target)]:
            del self.workers[worker.slot]
        self.peak_workers = max(self.peak_workers, len(self.live))
        if self._scaler is not None and not self._lost:  # dask-local: one Dask worker per slot
            busy = {address for worker in self.workers.values() for address in worker.address.values()}
            self._scaler.scale(max(target, len(self.live)), busy)

    def fill(self, why: str = "") -> None:
        """Slots back up to the target at once (after a slot's task was given up)."""
        if len(self.live) < self.target:
            self.resize(self.target, why or "refill")

    def free_capacity(self) -> list[DaskSlot]:
        return [w for w in self.live if len(w.in_flight) < self.depth]

    def busy_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.in_flight)

    def in_flight_count(self) -> int:
        return sum(len(w.in_flight) for w in self.workers.values())

    # ----------------------------------------------------------------- feeding
    def send(self, worker: DaskSlot, task: Task) -> None:
        worker.in_flight.append(task)
        if self._lost:
            return  # answered by wait() with the reason
        token = f"pagemill-{task.seq}-{task.attempts}-{uuid.uuid4().hex}"
        given, payload = _absolute(task.kind, task.payload)
        try:
            future = self.client.submit(
                run_remote, self.specs_blob, self.fingerprint, self.config, task.seq, task.kind, payload,
                self.topic, token, key=token, pure=False,
                priority=10 * (4 - task.rank) + (1 if task.kind == "ingest" else 0),
            )
        except Exception as exc:  # noqa: BLE001 - a closed client raises its own kinds
            self._lost = f"lost the dask scheduler at {self.address} ({type(exc).__name__}: {exc})"
            return
        worker.futures[task.seq] = future
        worker.given[task.seq] = given
        self._tokens[token] = (worker, task.seq)

    def send_batch(self, worker: DaskSlot, tasks: list[Task]) -> None:
        for task in tasks:
            self.send(worker, task)

    def tasks_before_recycle(self, worker: DaskSlot) -> int:
        return 1

    def answered(self, worker: DaskSlot) -> None:
        """Answers are per future; nothing to count."""

    def _on_start(self, event: tuple[float, Any]) -> None:
        """Runs in the client's event loop: only note it; wait() reads it in the scheduler's thread."""
        _, (token, address) = event
        self._starts.append((token, address, time.monotonic()))

    def _note_starts(self) -> None:
        while self._starts:
            token, address, when = self._starts.popleft()
            owner = self._tokens.get(token)
            if owner is not None and owner[1] in owner[0].futures:
                owner[0].started[owner[1]] = when
                owner[0].address[owner[1]] = address
                self.workers_seen.add(address)

    def wait(self, timeout: float) -> list[PoolEvent]:
        from distributed import wait as dask_wait

        events: list[PoolEvent] = []
        for worker in self._killed:
            self.workers.pop(worker.slot, None)
            events.append(PoolEvent("died", worker, exitcode=None))
        self._killed.clear()
        self._note_starts()
        if not self._lost and self.client.status in ("closing", "closed", "failed"):
            self._lost = f"lost the dask scheduler at {self.address}"
        if self._lost:
            return events + self._answer_lost()
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
            seq = next((s for s, f in worker.futures.items() if f is future), None)
            if seq is None:
                continue
            if future.status == "finished":
                try:
                    message = _as_given(future.result(), worker.given.get(seq))
                except Exception:  # noqa: BLE001 - the client closed between wait and result
                    continue
                events.append(PoolEvent("message", worker, message))
                self._count(worker, message)
            else:
                self._forget(worker, seq)
                events.append(PoolEvent("died", worker, exitcode=None))
        return events

    def _answer_lost(self) -> list[PoolEvent]:
        """Every task held ends: the first with the critical error (one line, the run stops), the
        others left unfinished for the resume."""
        events: list[PoolEvent] = []
        error = ErrorInfo("critical", "DaskSchedulerLost", self._lost, "")
        told = False
        for worker in list(self.workers.values()):
            for task in list(worker.in_flight):
                self._forget(worker, task.seq)
                if not told:
                    events.append(PoolEvent("message", worker, (task.seq, "failure", StageFailure(error, None, "", 0.0))))
                    told = True
                else:
                    events.append(PoolEvent("message", worker, (task.seq, "fatal", self._lost)))
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

    def _forget(self, worker: DaskSlot, seq: int) -> None:
        future = worker.futures.pop(seq, None)
        if future is not None:
            self._tokens.pop(future.key, None)
        worker.started.pop(seq, None)
        worker.address.pop(seq, None)
        worker.given.pop(seq, None)

    def complete(self, worker: DaskSlot, seq: int) -> Task | None:
        self._forget(worker, seq)
        for index, task in enumerate(worker.in_flight):
            if task.seq == seq:
                del worker.in_flight[index]
                worker.tasks_done += 1
                return task
        return None

    def overdue(self, timeout: float) -> list[tuple[DaskSlot, Task, float]]:
        self._note_starts()
        now = time.monotonic()
        found = []
        for worker in self.workers.values():
            task = worker.running
            if task is None:
                continue
            if task.seq in worker.started and now - worker.started[task.seq] > timeout:
                found.append((worker, task, now - worker.started[task.seq]))
        return found

    def running_task(self, worker: DaskSlot) -> Task | None:
        return worker.running

    def kill(self, worker: DaskSlot, reason: str) -> None:
        """Give up on the slot's task. The slot stays until wait() reports it dead, so the scheduler
        handles its task (retry or poison) as it does a killed local worker; the Dask worker
        running it is restarted, as a running task cannot be cancelled."""
        addresses = {a for a in worker.address.values()}
        futures = list(worker.futures.values())
        for seq in list(worker.futures):
            self._forget(worker, seq)
        worker.retiring = worker.retiring or reason
        self._killed.append(worker)
        try:
            self.client.cancel(futures, force=True)
        except Exception as exc:  # noqa: BLE001 - a lost cluster is reported by wait()
            logger.debug("dask cancel: {}", exc)
        for address in addresses:
            self._restart(address, reason)

    def _restart(self, address: str, reason: str) -> None:
        def restart() -> None:
            try:
                self.client.restart_workers([address], timeout=RESTART_TIMEOUT)
                logger.info("dask worker {} restarted ({})", address, reason)
            except Exception as exc:  # noqa: BLE001 - no nanny, or the worker is gone already
                logger.warning("dask worker {} cannot be restarted ({}: {}); its thread stays busy until the page "
                               "returns", address, type(exc).__name__, exc)

        threading.Thread(target=restart, name="pagemill-dask-restart", daemon=True).start()

    def check_memory(self, limit_mb: float) -> dict[int, float]:
        return {}

    # ---------------------------------------------------------------- stopping
    def terminate(self) -> None:
        futures = [f for w in self.workers.values() for f in w.futures.values()]
        for worker in list(self.workers.values()):
            worker.futures.clear()
            worker.in_flight.clear()
        self.workers.clear()
        self._tokens.clear()
        if futures and not self._lost:
            try:
                self.client.cancel(futures, force=True)
            except Exception as exc:  # noqa: BLE001 - the cluster may be gone
                logger.debug("dask cancel: {}", exc)

    def shutdown(self, grace: float = 5.0) -> None:
        self.terminate()
        for close in (self.client.close, *((self.cluster.close,) if self.cluster is not None else ())):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - closing what is already gone
                logger.debug("dask close: {}", exc)


def _absolute(kind: str, payload: Any) -> tuple[str, Any]:
    """The payload with an absolute document path (Dask workers may run in another folder), and
    the path as the user gave it."""
    given = payload.path if kind == "ingest" else payload.document
    absolute = os.path.abspath(given)
    if absolute == given:
        return given, payload
    return given, replace(payload, path=absolute) if kind == "ingest" else replace(payload, document=absolute)


def _as_given(message: tuple[int, str, Any], given: str | None) -> tuple[int, str, Any]:
    """Records name the document as the user gave it, whatever path the Dask worker opened."""
    seq, kind, value = message
    if given is None:
        return message
    if kind == "pages":
        return seq, kind, [replace(page, document=given) for page in value]
    if kind == "result":
        return seq, kind, replace(value, document=given)
    return message
