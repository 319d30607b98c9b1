"""The worker pool's mechanism with real processes: taking tasks back, a worker that cannot be
written to, progress slots running out, the memory limit, deaths of idle workers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from conftest import FAULTS, noop_config
from loguru import logger
from waiting import wait_until

from engine.api import Engine
from engine.pagequeue import Task, next_seq
from engine.pool import PoolEvent, WorkerPool
from engine.records import PageTask
from engine.registry import PluginRegistry


@pytest.fixture
def log_lines():
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="DEBUG")
    yield lines
    logger.remove(sink)


def make_pool(tmp_path: Path, workers: int = 1) -> WorkerPool:
    config = noop_config(None, plugins=(FAULTS,), options={"page_gate": str(tmp_path / "gate")})
    specs = PluginRegistry.for_run(config.plugins, load_entry_points=False).specs
    return WorkerPool(specs, config, workers)


def page_task(index: int) -> Task:
    payload = PageTask("doc.noop", "d" * 8, index, 10, kind="noop", has_text_layer=True)
    return Task(next_seq(), "page", payload, 2, 10)


def one_ready_worker(pool: WorkerPool):
    """Start one worker and wait until it says it is ready."""
    pool.resize(1, "test")
    collect(pool, lambda events: all(w.ready for w in pool.workers.values()))
    return next(iter(pool.workers.values()))


def collect(pool: WorkerPool, until, timeout: float = 30.0) -> list[PoolEvent]:
    """Pool events until ``until(events)`` holds; ready messages mark their worker ready."""
    events: list[PoolEvent] = []

    def more() -> bool:
        for event in pool.wait(0.05):
            if event.kind == "message" and event.message[1] == "ready":
                event.worker.ready = True
            events.append(event)
        return until(events)

    wait_until(more, timeout)
    return events


def answers(events: list[PoolEvent]) -> list[tuple[int, str]]:
    return [(e.message[0], e.message[1]) for e in events if e.kind == "message" and e.message[1] not in ("ready", "log")]


def test_a_waiting_task_is_given_back_and_a_started_one_finishes(tmp_path) -> None:
    pool = make_pool(tmp_path)
    try:
        worker = one_ready_worker(pool)
        first, second = page_task(0), page_task(1)
        pool.send_batch(worker, [first, second])
        wait_until(lambda: pool.board.in_hand(worker.slot)[0] == first.seq, what="the first task in hand")
        assert pool.revoke(worker, [first, second]) == 1  # the one in hand is left to finish
        assert worker.in_flight == [first] and list(worker.revoking) == [second.seq]
        (tmp_path / "gate").touch()
        events = collect(pool, lambda events: len(answers(events)) == 2)
        assert answers(events) == [(first.seq, "result"), (second.seq, "revoked")]
        assert pool.given_back(worker, second.seq) is second
        assert pool.complete(worker, first.seq) is first
        assert not worker.held
    finally:
        pool.shutdown()


def test_a_task_asked_back_after_it_started_is_finished_and_not_lost(tmp_path, monkeypatch) -> None:
    pool = make_pool(tmp_path)
    try:
        worker = one_ready_worker(pool)
        task = page_task(0)
        pool.send(worker, task)
        wait_until(lambda: pool.board.in_hand(worker.slot)[0] == task.seq, what="the task in hand")
        monkeypatch.setattr(pool.board, "in_hand", lambda slot: (-1, 0))  # the parent has not seen it start
        assert pool.revoke(worker, [task]) == 1
        (tmp_path / "gate").touch()
        events = collect(pool, lambda events: answers(events))
        assert answers(events) == [(task.seq, "result")]
        assert pool.complete(worker, task.seq) is task and not worker.held
    finally:
        pool.shutdown()


def test_a_send_to_a_dead_worker_is_reported_as_its_death(tmp_path) -> None:
    pool = make_pool(tmp_path)
    try:
        worker = one_ready_worker(pool)
        worker.process.kill()
        worker.process.join(5)
        task = page_task(0)
        pool.send(worker, task)  # whether or not the pipe says so now, nothing is raised
        events = collect(pool, lambda events: any(e.kind == "died" for e in events))
        died = next(e for e in events if e.kind == "died")
        assert died.worker is worker and pool.running_task(worker) is None  # it never started the task
        assert pool.take_all(worker) == [task]
        assert worker.slot not in pool.workers
    finally:
        pool.shutdown()


def test_a_start_waits_for_a_free_progress_slot(tmp_path) -> None:
    pool = make_pool(tmp_path, workers=1)  # 2 × 1 + 1 slots
    try:
        pool.target = 5
        pool.fill()
        assert len(pool.workers) == pool.board.n_slots == 3  # no error: the other starts wait
        victim = pool.workers[0]
        victim.process.kill()
        collect(pool, lambda events: any(e.kind == "died" for e in events))
        pool.fill()
        assert len(pool.workers) == 3 and pool.workers[0] is not victim
    finally:
        pool.shutdown()


def test_a_fresh_worker_over_the_memory_limit_is_not_recycled_and_the_limit_is_named(tmp_path, log_lines) -> None:
    pool = make_pool(tmp_path)
    try:
        worker = one_ready_worker(pool)
        for _ in range(3):
            pool.check_memory(1)
        assert not worker.retiring
        assert sum("below a fresh worker" in line for line in log_lines) == 1
        worker.tasks_done = 1  # it has done a task since it started: now it is recycled
        pool.check_memory(1)
        assert worker.retiring.startswith("recycled: RSS")
    finally:
        pool.shutdown()


def test_an_idle_worker_that_dies_is_logged_and_replaced_at_once(noop_archive, tmp_path, log_lines) -> None:
    archive = noop_archive([2])
    with Engine(noop_config(tmp_path / "out", workers="2")) as engine:
        job = engine.submit(archive)
        job.result(timeout=30)
        pool = engine._pool
        victim = next(iter(pool.workers.values()))
        os.kill(victim.pid, signal.SIGKILL)
        wait_until(lambda: any(f"worker {victim.slot} (pid {victim.pid}) died while idle" in line for line in log_lines),
                   what="the death logged")
        wait_until(lambda: any("started: replacing worker" in line for line in log_lines), what="the replacement")
        assert len(pool.live) == 2


# ------------------------------------------------------------- a worker's process group and signals
def test_a_worker_leads_its_own_group_ignores_sigterm_and_passes_no_descriptor_on(tmp_path) -> None:
    pool = make_pool(tmp_path)
    try:
        worker = one_ready_worker(pool)
        assert os.getpgid(worker.pid) == worker.pid != os.getpgrp()
        os.kill(worker.pid, signal.SIGTERM)  # systemd's stop reaches every process: the parent decides
        os.kill(worker.pid, signal.SIGINT)
        (tmp_path / "gate").touch()
        task = page_task(0)
        pool.send(worker, task)
        events = collect(pool, lambda events: answers(events) or any(e.kind == "died" for e in events))
        assert answers(events) == [(task.seq, "result")]
        inheritable = []
        for fd in os.listdir(f"/proc/{worker.pid}/fd"):
            flags = int(Path(f"/proc/{worker.pid}/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8)
            if int(fd) > 2 and not flags & os.O_CLOEXEC:
                inheritable.append(fd)
        assert inheritable == []  # a program a plugin starts keeps no pipe of the run open
    finally:
        pool.shutdown()


def test_the_forkserver_outlives_a_sigterm_to_the_run_s_process_group(tmp_path) -> None:
    pool = make_pool(tmp_path)
    try:
        worker = one_ready_worker(pool)
        forkserver = psutil.Process(worker.pid).parent()
        assert "forkserver" in " ".join(forkserver.cmdline())
        forkserver.send_signal(signal.SIGTERM)  # as systemd's stop sends it to every process of the run
        time.sleep(0.3)  # a signal that kills takes effect by then
        assert forkserver.status() != psutil.STATUS_ZOMBIE
        (tmp_path / "gate").touch()
        task = page_task(0)
        pool.send(worker, task)
        events = collect(pool, lambda events: answers(events) or any(e.kind == "died" for e in events))
        assert answers(events) == [(task.seq, "result")]
    finally:
        pool.shutdown()


def test_processes_the_forkserver_starts_for_the_host_still_die_of_sigterm(tmp_path) -> None:
    pool = make_pool(tmp_path)
    try:
        one_ready_worker(pool)  # the forkserver is up, with its own SIGTERM ignored
        for _ in range(20):  # as a host's Pool.terminate() meets them, some maybe just forked
            host_process = pool.ctx.Process(target=time.sleep, args=(60,))
            host_process.start()
            host_process.terminate()
            host_process.join(10)
            assert host_process.exitcode == -signal.SIGTERM
    finally:
        pool.shutdown()


class BrokenConn:
    """A pipe end whose next message cannot be unpickled."""

    def poll(self) -> bool:
        return True

    def recv(self):
        raise UnicodeDecodeError("utf-8", b"\x80", 0, 1, "invalid start byte")


def test_a_message_that_cannot_be_read_ends_its_worker_as_a_death(tmp_path, log_lines) -> None:
    pool = make_pool(tmp_path)
    try:
        worker = one_ready_worker(pool)
        real_conn, worker.conn = worker.conn, BrokenConn()
        assert pool._drain(worker) == []
        assert worker.fault.startswith("sent a message that cannot be read (UnicodeDecodeError")
        worker.conn = real_conn
        events = collect(pool, lambda events: any(e.kind == "died" for e in events))
        assert [e.worker for e in events if e.kind == "died"] == [worker]
        assert any("cannot be read" in line for line in log_lines)
    finally:
        pool.shutdown()


CHILD = '''
import os, subprocess, sys, time
from engine import hookimpl

@hookimpl
def pagemill_extract(page, ocr, config):
    pids = config.options["child_pids"]
    child = [sys.executable, "-c", f"import os, time; open({pids!r} + '.' + str(os.getpid()), 'w'); time.sleep(300)"]
    if page.index == 0:
        subprocess.Popen(child)  # left running
    elif page.index == 1:
        os.system(" ".join(child[:2]) + ' "' + child[2] + '"')  # waited for: the page hangs
    return []
'''


def children_of(prefix: Path) -> list[int]:
    return [int(path.suffix[1:]) for path in prefix.parent.glob(prefix.name + ".*")]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.mark.slow
def test_programs_a_plugin_starts_end_with_its_worker_at_a_timeout_and_at_the_end(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "pids").mkdir()
    prefix = tmp_path / "pids" / "child"
    config = noop_config(tmp_path / "out", plugins=(str(tmp_path / "child.py"),), workers="1", page_timeout=1.0,
                         max_attempts=1, options={"child_pids": str(prefix)})
    results = list(Engine(config).process(archive))
    assert {r.page: r.status for r in results} == {1: "ok", 2: "failed"}
    started = children_of(prefix)
    assert len(started) == 2
    wait_until(lambda: not any(alive(pid) for pid in started), timeout=10, what="the plugin's programs gone")


class _Watched:
    """A stand-in pool over one process we start: only what check_memory reads."""

    def __init__(self, pid: int) -> None:
        from types import SimpleNamespace

        from engine.pool_checks import WorkerChecks

        self.checks = WorkerChecks()
        self.checks.workers = {0: SimpleNamespace(slot=0, pid=pid, retiring="", ready=True, tasks_done=1)}
        self.checks._rss_warned = False
        self.retired: list[str] = []
        self.checks.retire = lambda worker, reason: self.retired.append(reason)


def test_worker_memory_counts_the_programs_it_started_but_recycling_only_its_own() -> None:
    import subprocess
    import sys

    from engine.process_memory import tree_rss

    child = "b = b'x' * (120 * 2**20); import time; time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {child!r}]); "
                               "time.sleep(60)"])
    try:
        tree = wait_until(lambda: (t := tree_rss([parent.pid]).get(parent.pid)) and t.children_mb > 100 and t,
                          what="the child's memory")
        watched = _Watched(parent.pid)
        sizes = watched.checks.check_memory(tree.own_mb + 60)
        assert sizes[0] > tree.own_mb + 100  # what the scaling policy sees: the worker with its child
        assert watched.retired == []  # the worker's own RSS is under the limit: not recycled
        assert watched.checks.check_memory(1) and watched.retired  # its own RSS past the limit: recycled
    finally:
        for process in psutil.Process(parent.pid).children(recursive=True):
            process.kill()
        parent.kill()
        parent.wait()
