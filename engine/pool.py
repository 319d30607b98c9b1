"""Worker processes of our own: start, stop, resize, recycle, take tasks back, deadlines, deaths.

One ``Process`` and one ``Pipe`` per worker, from an explicit multiprocessing context
(forkserver by default). The parent waits on every pipe *and* every process sentinel (one
``select.poll`` object, made again only when the workers change: the wait comes once or twice a
page, so it must cost little), so a worker that dies is noticed at once, and it knows exactly which
tasks each worker holds (``WorkerHandle.in_flight``, in the order sent; the worker runs them in
that order, so the first is running or about to). A task the parent asks back (``revoke``) moves
to ``WorkerHandle.revoking`` until the worker answers: given back (never started) or finished
(it had started). A worker that cannot be written to, or that died, is handled as dead: the task
it had in hand (its progress slot says which) is the one charged, the others go back uncharged.

How many tasks a worker may hold is the dispatcher's business (engine.dispatch), what to run next
the scheduler's, how many workers to keep the scaling policy's (engine.scaling); the pool applies
a target it is given and replaces a worker that left at once. A worker's progress slot stays its
own until its process has exited; when no slot is free, a start waits for one (``fill``). What
the pool reads of its workers without asking them (the task and plugin call in hand, deadlines,
memory) is engine.pool_checks.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.connection
import select
import threading
import time
from typing import Any

from loguru import logger

from engine.lifeline import kill_group, run_identity
from engine.pagequeue import N_CLASSES, Task
from engine.pool_checks import WorkerChecks
from engine.progress import ProgressBoard
from engine.workerhandle import (
    PRELOAD_MODULES,
    PoolEvent,
    WorkerHandle,
    describe_exit,
    hold,
    release,
    spawn_worker,
)

__all__ = ["PRELOAD_MODULES", "PoolEvent", "WorkerHandle", "WorkerPool", "describe_exit"]


class WorkerPool(WorkerChecks):
    """Starts, feeds, watches, recycles and stops worker processes."""

    time_bounded = True  # a worker may hold several short tasks (engine.dispatch)
    can_revoke = True

    def __init__(
        self,
        plugin_specs: list[Any],
        config: Any,
        max_workers: int,
        context: str = "forkserver",
        depth: int = 2,
    ) -> None:
        self.context = context
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
        self.call_table: list[Any] | None = None  # the plugin calls of every worker, from the first ready message
        self.held_by_rank = [0] * N_CLASSES  # tasks in flight (not being taken back), by class
        self._run = run_identity()
        self._rss_warned = False
        self._waiting_for_slot = False
        self._watch_key: tuple[Any, ...] = ()
        self._poller = select.poll()
        self._watched: dict[int, tuple[bool, WorkerHandle]] = {}  # fd -> (is its pipe, worker)

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
        if len(live) > target:
            for worker in sorted(live, key=lambda w: w.held)[: len(live) - target]:
                self.retire(worker, reason)
        self.fill()

    def fill(self, why: str = "") -> None:
        """Start workers up to the target; a start with no progress slot free waits for one."""
        missing = self.target - len(self.live)
        for _ in range(missing):
            worker = self.start_worker()
            if worker is None:
                break
            if why:
                logger.info("worker {} (pid {}) started: {}", worker.slot, worker.pid, why)

    def start_worker(self) -> WorkerHandle | None:
        slot = next((s for s in range(self.board.n_slots) if s not in self.workers), None)
        if slot is None:
            if not self._waiting_for_slot:
                logger.debug("every progress slot is held by a worker still finishing; a start waits")
            self._waiting_for_slot = True
            return None
        self._waiting_for_slot = False
        self.board.clear_in_hand(slot)
        # a worker forked by the run's main thread (or the forkserver) may die with its parent;
        # one started from another thread must outlive that thread (engine.lifeline)
        kill_with_parent = self.context == "forkserver" or threading.current_thread() is threading.main_thread()
        worker = spawn_worker(self.ctx, slot, self.board, (self.plugin_specs, self.config), self._run, kill_with_parent)
        self.workers[slot] = worker
        self.workers_started += 1
        self.peak_workers = max(self.peak_workers, len(self.live))
        return worker

    def retire(self, worker: WorkerHandle, reason: str) -> None:
        """No new work for this worker; the tasks it has not started go back; it stops once idle."""
        if not worker.retiring:
            worker.retiring = reason or "retired"
            logger.debug("retiring worker {} (pid {}): {}", worker.slot, worker.pid, worker.retiring)
            self.revoke(worker, worker.in_flight[1:])
        self._stop_if_idle(worker)

    def _stop_if_idle(self, worker: WorkerHandle) -> None:
        if worker.retiring and not worker.held and not worker.stopping:
            worker.stopping = True
            self._transmit(worker, None)

    # ----------------------------------------------------------------- feeding
    def send_batch(self, worker: WorkerHandle, tasks: list[Task]) -> None:
        """Tasks in one message; the worker answers each one as it finishes."""
        for task in tasks:
            hold(worker, task, self.held_by_rank)
        self._transmit(worker, ("tasks", [(t.seq, t.kind, t.payload, t.blocked, t.trial) for t in tasks]))

    def send(self, worker: WorkerHandle, task: Task) -> None:
        self.send_batch(worker, [task])

    def revoke(self, worker: WorkerHandle, tasks: list[Task]) -> int:
        """Ask the worker to give these tasks back unless it has started them. Returns how many
        were asked (a task it has in hand per its progress slot is left to finish)."""
        if not tasks or worker.lost:
            return 0
        started, _ = self.board.in_hand(worker.slot)
        asked = [task for task in tasks if task.seq != started]
        for task in asked:
            self._drop(worker, task)
            worker.revoking[task.seq] = task
        if asked:
            self._transmit(worker, ("revoke", [task.seq for task in asked]))
        return len(asked)

    def revoke_waiting(self) -> int:
        """Ask every worker to give back the tasks it has not started (cancellation)."""
        return sum(self.revoke(worker, worker.in_flight[1:]) for worker in list(self.workers.values()))

    def _transmit(self, worker: WorkerHandle, message: Any) -> None:
        if worker.lost:
            return
        try:
            worker.conn.send(message)
        except (OSError, EOFError, ValueError):  # BrokenPipeError, a closed connection
            self._lose(worker)

    def _lose(self, worker: WorkerHandle) -> None:
        """A worker that cannot be written to is dead or dying: make sure, and let ``wait`` report
        it like any death (its sentinel fires), so its tasks are handled once, in one place."""
        worker.lost = True
        worker.retiring = worker.retiring or "lost"
        logger.debug("worker {} (pid {}) cannot be written to; ending it", worker.slot, worker.pid)
        _kill(worker)

    def tasks_before_recycle(self, worker: WorkerHandle) -> int:
        """How many more tasks the worker may be given before it is recycled (a large number when never)."""
        limit = self.config.max_pages_per_worker
        return max(0, limit - worker.tasks_done - worker.held) if limit else 1 << 30

    def free_capacity(self) -> list[WorkerHandle]:
        """Workers that can take at least one more task now (engine.dispatch says how many)."""
        return [w for w in self.workers.values()
                if w.ready and not w.retiring and len(w.in_flight) < self.depth and self.tasks_before_recycle(w)]

    def busy_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.held)

    def in_flight_count(self) -> int:
        return sum(w.held for w in self.workers.values())

    # ---------------------------------------------------------------- watching
    def wait(self, timeout: float) -> list[PoolEvent]:
        """Messages from workers and deaths of workers, waiting at most ``timeout`` seconds."""
        if not self.workers:
            time.sleep(max(0.0, min(timeout, 0.05)))
            return []
        poller, watched = self._watch()
        ready = poller.poll(math.ceil(max(0.0, timeout) * 1000))
        events: list[PoolEvent] = []
        dead: list[WorkerHandle] = []
        for fd, _ in ready:
            is_pipe, worker = watched[fd]
            if is_pipe:
                events.extend(self._drain(worker))
            elif worker not in dead:
                dead.append(worker)
        for worker in dead:
            if worker.slot not in self.workers:
                continue
            events.extend(self._drain(worker))  # results it sent before it died are kept
            self._reap(worker)
            if not worker.stopping or worker.held:  # a clean stop still reports tasks it held
                events.append(PoolEvent("died", worker, exitcode=worker.exitcode))
        return events

    def _watch(self) -> tuple[Any, dict[int, tuple[bool, WorkerHandle]]]:
        """The poll object over the workers' pipes (but for a worker whose messages are no longer
        read) and sentinels; made again when a worker comes, goes or fails."""
        key = tuple((slot, id(worker), bool(worker.fault)) for slot, worker in self.workers.items())
        if key != self._watch_key:
            watched: dict[int, tuple[bool, WorkerHandle]] = {}
            for worker in self.workers.values():
                if not worker.fault:
                    watched[worker.conn.fileno()] = (True, worker)
                watched[worker.process.sentinel] = (False, worker)
            poller = select.poll()
            for fd in watched:
                poller.register(fd, select.POLLIN)  # a closed end shows as POLLHUP, reported too
            self._watch_key, self._poller, self._watched = key, poller, watched
        return self._poller, self._watched

    def _drain(self, worker: WorkerHandle) -> list[PoolEvent]:
        """The messages waiting from a worker. One that cannot be read (a garbled or truncated
        pickle) is that worker failing: it is ended, reported as a death, and read no more."""
        events: list[PoolEvent] = []
        if worker.fault:
            return events
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if not (isinstance(message, tuple) and len(message) >= 3):
                    raise ValueError(f"a message of the wrong shape ({type(message).__name__})")
                events.append(PoolEvent("message", worker, message))
        except (EOFError, OSError):
            pass
        except Exception as exc:  # noqa: BLE001 - a broken message ends its worker, never the run
            worker.fault = f"sent a message that cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
            logger.warning("worker {} (pid {}) {}; ending it", worker.slot, worker.pid, worker.fault)
            worker.retiring = worker.retiring or "unreadable message"
            _kill(worker)
        return events

    def _reap(self, worker: WorkerHandle) -> None:
        """A worker's process has ended: note what it had in hand, settle its counters, free its
        slot; the programs its plugins started and left running end with it."""
        kill_group(worker.pid)  # before the join: a child's pid is not reused until it is joined
        worker.process.join(timeout=1)
        worker.final_in_hand, _ = self.board.in_hand(worker.slot)
        worker.final_plugin = self.board.plugin_now(worker.slot)
        del self.workers[worker.slot]
        self._close(worker)

    def complete(self, worker: WorkerHandle, seq: int) -> Task | None:
        """Take the task ``seq`` off the worker (finished); retire it when it has done enough."""
        task = worker.revoking.pop(seq, None)
        if task is None:
            task = next((t for t in worker.in_flight if t.seq == seq), None)
            if task is None:
                return None
            self._drop(worker, task)
        worker.tasks_done += 1
        limit = self.config.max_pages_per_worker
        if limit and worker.tasks_done >= limit and not worker.retiring:
            self.retire(worker, f"recycled after {worker.tasks_done} tasks")
        self._stop_if_idle(worker)
        return task

    def given_back(self, worker: WorkerHandle, seq: int) -> Task | None:
        """The worker gave back a task it had not started."""
        task = worker.revoking.pop(seq, None)
        self._stop_if_idle(worker)
        return task

    def _drop(self, worker: WorkerHandle, task: Task) -> None:
        release(worker, task, self.held_by_rank)

    def take_all(self, worker: WorkerHandle) -> list[Task]:
        """Every task a dead worker held, in the order sent; it holds none after."""
        tasks = [*worker.in_flight, *worker.revoking.values()]
        for task in worker.in_flight:
            self.held_by_rank[task.rank] -= 1
        worker.in_flight.clear()
        worker.revoking.clear()
        worker.long_tasks, worker.short_seconds = 0, 0.0
        return tasks

    def kill(self, worker: WorkerHandle, reason: str) -> None:
        logger.debug("killing worker {} (pid {}): {}", worker.slot, worker.pid, reason)
        worker.retiring = worker.retiring or reason
        _kill(worker)

    # ---------------------------------------------------------------- stopping
    def shutdown(self, grace: float = 5.0) -> None:
        for worker in list(self.workers.values()):
            worker.retiring = worker.retiring or "shutdown"
            if not worker.stopping:
                worker.stopping = True
                self._transmit(worker, None)
        deadline = time.monotonic() + grace
        for worker in list(self.workers.values()):
            multiprocessing.connection.wait([worker.process.sentinel], max(0.0, deadline - time.monotonic()))
            kill_group(worker.pid)  # what its plugins started and left running; the worker too if still there
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=2)
            self._close(worker)
        self.workers.clear()
        self.held_by_rank = [0] * N_CLASSES

    def terminate(self) -> None:
        """Kill every worker now; attempts they had in hand are counted as killed."""
        for worker in list(self.workers.values()):
            _kill(worker)
        for worker in list(self.workers.values()):
            worker.process.join(timeout=2)
            self._close(worker)
        self.workers.clear()
        self.held_by_rank = [0] * N_CLASSES

    def _close(self, worker: WorkerHandle) -> None:
        """Release an ended (or unkillable) worker's pipe, process and, once it is dead, its slot."""
        worker.lost = True  # nothing is sent to it any more
        worker.conn.close()
        if worker.process.is_alive():
            return
        worker.exitcode = worker.process.exitcode
        self.board.reconcile_dead(worker.slot)
        worker.process.close()  # its sentinel fd now, rather than at garbage collection


def _kill(worker: WorkerHandle) -> None:
    """SIGKILL to the worker and the process group it leads (the programs its plugins started)."""
    kill_group(worker.pid)
    try:
        worker.process.kill()
    except (OSError, ValueError):
        pass  # already gone, or its process object already closed
