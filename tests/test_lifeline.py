"""Workers end when the run's process ends, even while a plugin hangs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
from waiting import wait_until

from engine.lifeline import run_identity, run_is_alive

TESTS = Path(__file__).parent

RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import FAULTS, noop_config
    from engine.api import Engine

    options = {{"fault_kind": "hang", "fault_match": "page", "trace_file": {trace!r}}}
    config = noop_config({out!r}, plugins=(FAULTS,), options=options, workers="2", page_timeout=600)
    for result in Engine(config).process({archive!r}):
        pass
""")


def test_run_is_alive_knows_the_process_by_pid_and_start_time() -> None:
    pid, started = run_identity()
    assert pid == os.getpid() and started > 0
    assert run_is_alive(pid, started)
    assert not run_is_alive(pid, started - 100)  # the same pid, another process
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not run_is_alive(int(done.stdout), 0)


def test_workers_hung_in_a_plugin_end_when_the_run_is_killed(noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 3])
    trace = tmp_path / "trace"
    script = RUN.format(tests=str(TESTS), trace=str(trace), out=str(tmp_path / "out"), archive=str(archive))
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: trace.exists() and len({line.split("\t")[0] for line in trace.read_text().splitlines()
                                                   if " page " in line}) == 2, what="two workers hung")
        family = psutil.Process(run.pid).children(recursive=True)  # the forkserver and the workers
        workers = {int(line.split("\t")[0]) for line in trace.read_text().splitlines()}
        assert workers <= {process.pid for process in family}
    finally:
        run.kill()
        run.wait()

    def gone() -> bool:
        return not any(process.is_running() and process.status() != psutil.STATUS_ZOMBIE for process in family)

    wait_until(gone, timeout=10, what="the run's workers and forkserver gone")


HANGS_IN_A_CHILD = '''
import os, sys
from engine import hookimpl

@hookimpl
def pagemill_extract(page, ocr, config):
    pids = config.options["child_pids"]
    os.system(f"{sys.executable} -c \\"import os, time; open({pids!r} + '.' + str(os.getpid()), 'w'); time.sleep(300)\\"")
    return []
'''

RUN_CHILDREN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import noop_config
    from engine.api import Engine

    config = noop_config({out!r}, plugins=({plugin!r},), options={{"child_pids": {pids!r}}}, workers="2",
                         page_timeout=600)
    for result in Engine(config).process({archive!r}):
        pass
""")


def test_programs_started_by_plugins_end_when_the_run_is_killed(noop_archive, tmp_path) -> None:
    archive = noop_archive([3, 3])
    (tmp_path / "child.py").write_text(HANGS_IN_A_CHILD)
    (tmp_path / "pids").mkdir()
    prefix = tmp_path / "pids" / "child"
    script = RUN_CHILDREN.format(tests=str(TESTS), out=str(tmp_path / "out"), plugin=str(tmp_path / "child.py"),
                                 pids=str(prefix), archive=str(archive))
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = wait_until(lambda: [int(p.suffix[1:]) for p in prefix.parent.glob("child.*")]
                             if len(list(prefix.parent.glob("child.*"))) == 2 else None, what="two hung programs")
    finally:
        run.kill()
        run.wait()

    def gone() -> bool:
        return not any(_alive(pid) for pid in started)

    wait_until(gone, timeout=10, what="the programs the plugins started gone with the run")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
