"""The dask.distributed executor: the same outputs as the local pool on the sample archive."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.api import Engine
from engine.config import EngineConfig
from engine.errors import ConfigError, CriticalError
from engine.ledger import LEDGER_NAME, Ledger
from engine.sample import generate_sample
from waiting import wait_until

pytest.importorskip("distributed")


def comparable(out: Path) -> list[dict]:
    records = []
    for line in (out / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("stage_seconds")
        records.append(record)
    return sorted(records, key=lambda r: (r["document"], r["page"]))


@pytest.mark.slow
def test_local_and_dask_outputs_are_identical_on_the_sample_archive(tmp_path, tesseract_available) -> None:
    archive = generate_sample(tmp_path / "sample", pages=6, seed=4)
    scans = archive.truth_path.parent / "scans"
    local, dask = tmp_path / "local", tmp_path / "dask"
    Engine(EngineConfig(out_dir=str(local), workers="2")).run(scans)
    summary = Engine(EngineConfig(out_dir=str(dask), workers="2", executor="dask-local")).run(scans)
    assert summary.pages_failed == 1  # the broken file, on both
    assert comparable(local) == comparable(dask)
    assert len(comparable(dask)) == 7


def test_plugin_not_importable_on_a_worker_is_a_clear_critical_error(tmp_path, noop_archive) -> None:
    plugin = tmp_path / "only_here.py"
    plugin.write_text("from engine import hookimpl\n@hookimpl\ndef pagemill_extract(page, ocr, config):\n    return []\n")
    archive = noop_archive([2])
    config = EngineConfig(out_dir=str(tmp_path / "out"), workers="1", executor="dask-local", load_entry_points=False,
                          plugins=(str(plugin), "plugins.noop"))
    engine = Engine(config)
    plugin.unlink()  # gone before the workers load it
    summary = engine.run(archive)
    assert summary.status == "critical" and summary.exit_code == 3
    assert "only_here" in summary.message


# --------------------------------------------------------------------------- faults on a Dask cluster
HANG_PLUGIN = """
import os, time
from engine import Field, hookimpl

@hookimpl
def pagemill_extract(page, ocr, config):
    options = config.options
    if page.index == 1 and page.document.endswith("doc000.noop"):
        marker = options.get("hang_marker")
        if marker is None or not os.path.exists(marker):
            if marker is not None:
                open(marker, "w").close()
            time.sleep(float(options.get("hang_s", 0)))
    return [Field("version", VERSION, 0.9)]
"""


def hang_plugin(folder: Path, version: str = "1") -> Path:
    """Page 2 of doc000 sleeps ``hang_s`` (only on its first attempt when ``hang_marker`` is set);
    every page gets the field ``version``."""
    path = folder / "hang_plugin.py"
    path.write_text(f"VERSION = {version!r}\n" + HANG_PLUGIN)
    return path


@pytest.fixture
def threads_cluster():
    """An in-process cluster (no nanny: a busy worker cannot be restarted)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def process_cluster():
    """One worker process under a nanny: it pickles and can be restarted."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster


def dask_config(out: Path, cluster, plugin: Path | None = None, **changes) -> EngineConfig:
    options = {"noop_ms": 20, **changes.pop("options", {})}
    values = dict(out_dir=str(out), workers="2", executor="dask", scheduler_address=cluster.scheduler_address,
                  plugins=((str(plugin),) if plugin else ()) + ("plugins.noop",), load_entry_points=False,
                  options=options, max_attempts=2, retry_base_delay=0.05)
    values.update(changes)
    return EngineConfig(**values)


def results_of(out: Path) -> dict[tuple[str, int], dict]:
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(Path(r["document"]).name, r["page"]): r for r in records}


def test_a_page_past_its_timeout_is_retried_then_poison_and_never_lost(tmp_path, noop_archive, threads_cluster) -> None:
    threads_cluster.scale(2)
    threads_cluster.wait_for_workers(2)
    archive = noop_archive([3, 3])
    config = dask_config(tmp_path / "out", threads_cluster, hang_plugin(tmp_path), page_timeout=0.3,
                         options={"hang_s": 0.8})
    summary = Engine(config).run(archive)
    assert summary.status == "partial" and summary.pages_total == 6
    results = results_of(tmp_path / "out")
    assert len(results) == 6
    hung = results[("doc000.noop", 2)]
    assert hung["status"] == "failed" and "ran past 0.3 s" in hung["error"]["message"] and hung["attempts"] == 2
    assert all(r["status"] == "ok" for key, r in results.items() if key != ("doc000.noop", 2))


def test_pages_queued_behind_a_hung_one_are_not_charged_for_the_wait(tmp_path, noop_archive, threads_cluster) -> None:
    archive = noop_archive([3, 3])  # one Dask worker thread, two slots: a page waits behind the hung one
    config = dask_config(tmp_path / "out", threads_cluster, hang_plugin(tmp_path), page_timeout=0.4,
                         options={"hang_s": 0.9})
    summary = Engine(config).run(archive)
    failed = [key for key, r in results_of(tmp_path / "out").items() if r["status"] != "ok"]
    assert failed == [("doc000.noop", 2)]
    assert summary.pages_ok == 5


@pytest.mark.slow
def test_a_worker_stuck_past_the_deadline_is_restarted_and_serves_again(tmp_path, noop_archive, process_cluster) -> None:
    from distributed import Client

    archive = noop_archive([3, 2])
    config = dask_config(tmp_path / "out", process_cluster, hang_plugin(tmp_path), page_timeout=0.5,
                         options={"hang_s": 60, "hang_marker": str(tmp_path / "hung-once")})
    with Client(process_cluster) as client:
        before = set(client.run(os.getpid).values())
        summary = Engine(config).run(archive)  # without a restart the only worker sleeps 60 s
        after = set(client.run(os.getpid).values())
    assert summary.status == "finished" and summary.pages_ok == 5
    assert results_of(tmp_path / "out")[("doc000.noop", 2)]["attempts"] == 2
    assert before and after and not before & after  # a new worker process took the stuck one's place


def test_relative_inputs_reach_workers_running_in_another_folder(tmp_path, noop_archive, process_cluster, monkeypatch) -> None:
    from distributed import Client

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    noop_archive([2, 1])
    with Client(process_cluster) as client:
        client.run(os.chdir, str(elsewhere))
    monkeypatch.chdir(tmp_path)
    summary = Engine(dask_config(tmp_path / "out", process_cluster)).run("archive")
    assert summary.pages_ok == 3
    documents = sorted({r["document"] for r in results_of(tmp_path / "out").values()})
    assert documents == ["archive/doc000.noop", "archive/doc001.noop"]  # as the user gave them


def test_a_changed_plugin_file_is_loaded_again_by_long_lived_workers(tmp_path, noop_archive, process_cluster) -> None:
    archive = noop_archive([2])
    plugin = hang_plugin(tmp_path, version="1")
    Engine(dask_config(tmp_path / "first", process_cluster, plugin)).run(archive)
    plugin = hang_plugin(tmp_path, version="2")
    Engine(dask_config(tmp_path / "second", process_cluster, plugin)).run(archive)
    first, second = results_of(tmp_path / "first"), results_of(tmp_path / "second")
    assert {r["fields"]["version"]["value"] for r in first.values()} == {"1"}
    assert {r["fields"]["version"]["value"] for r in second.values()} == {"2"}


# --------------------------------------------------------------------------- the scheduler's address
@pytest.mark.parametrize("address", ["127.0.0.1:notaport", "tcp://127.0.0.1:99999", "nosuch://host:1"])
def test_a_malformed_scheduler_address_is_a_usage_error(tmp_path, noop_archive, address) -> None:
    config = EngineConfig(out_dir=str(tmp_path / "out"), executor="dask", scheduler_address=address,
                          plugins=("plugins.noop",), load_entry_points=False)
    with pytest.raises(ConfigError, match="scheduler address"):
        Engine(config).run(noop_archive([1]))


def test_an_unreachable_scheduler_is_a_critical_error_naming_it(tmp_path, noop_archive, monkeypatch) -> None:
    import socket

    import engine.executors.dask as dask_executor

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 0.5)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    config = EngineConfig(out_dir=str(tmp_path / "out"), executor="dask", scheduler_address=address,
                          plugins=("plugins.noop",), load_entry_points=False)
    with pytest.raises(CriticalError, match=f"cannot reach the dask scheduler at {address}"):
        Engine(config).run(noop_archive([1]))


@pytest.mark.timeout(60)
def test_a_scheduler_lost_mid_run_stops_the_run_critical_and_keeps_what_was_done(tmp_path, noop_archive, monkeypatch) -> None:
    from distributed import LocalCluster

    import engine.executors.dask as dask_executor

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 0.5)  # how long the client tries to get it back
    archive = noop_archive([5, 5, 5])
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0", protocol="tcp")
    seen: list[str] = []

    def on_page_done(result) -> None:
        seen.append(result.document)
        if len(seen) == 2:
            cluster.close()  # the scheduler goes away mid-run

    config = dask_config(tmp_path / "out", cluster, options={"noop_ms": 30})
    summary = Engine(config, on_page_done=on_page_done).run(archive)
    assert summary.status == "critical" and summary.exit_code == 3
    assert f"lost the dask scheduler at {cluster.scheduler_address}" in summary.message
    with Ledger(tmp_path / "out" / LEDGER_NAME) as ledger:
        assert ledger.runs()[-1]["status"] == "critical"
        assert ledger.counts()["pages"] == len(seen) < 15  # what was done is kept, for the resume


def test_slots_winding_down_never_make_the_pool_run_out_of_progress_slots(tmp_path, threads_cluster) -> None:
    from engine.executors.dask import DaskPool, DaskSlot

    pool = DaskPool([], dask_config(tmp_path / "out", threads_cluster, workers="1"))
    try:
        for slot in range(pool.board.n_slots):  # every progress slot held by a slot being given up
            pool.workers[slot] = DaskSlot(slot, retiring="page timeout")
        pool.resize(1, "start")  # waits for a free slot instead of raising
        assert pool.live == []
        del pool.workers[0]  # one slot's death was reported
        pool.fill()
        assert [worker.slot for worker in pool.live] == [0]
    finally:
        pool.shutdown()


# --------------------------------------------------------------------------- sizing the cluster
def test_dask_local_grows_to_the_upper_bound_while_pages_wait(tmp_path, noop_archive, monkeypatch) -> None:
    import engine.executors.dask as dask_executor
    from engine.scaling import FakeProbe

    monkeypatch.setitem(dask_executor.LOCAL_CLUSTER_OPTIONS, "processes", False)  # in-process: starts in ms
    archive = noop_archive([6, 6, 6])
    config = EngineConfig(out_dir=str(tmp_path / "out"), workers="1:2", executor="dask-local",
                          plugins=("plugins.noop",), load_entry_points=False, options={"noop_ms": 40})
    with Engine(config, probe=FakeProbe([(0.0, 8000.0)])) as engine:  # CPU and memory to spare
        summary = engine.run(archive)
        pool = engine._pool
        assert pool.cluster is not None and len(pool.cluster.worker_spec) == 2
        used = set(pool.workers_seen)
    assert summary.status == "finished" and summary.pages_ok == 18
    assert summary.peak_workers == 2
    assert len(used) == 2  # the pages ran on two Dask workers, not one


def test_dask_local_shrinks_by_retiring_idle_workers_only(tmp_path, monkeypatch) -> None:
    import engine.executors.dask as dask_executor
    from engine.executors.dask import DaskPool

    monkeypatch.setitem(dask_executor.LOCAL_CLUSTER_OPTIONS, "processes", False)
    config = EngineConfig(out_dir=str(tmp_path / "out"), workers="1:3", executor="dask-local",
                          plugins=("plugins.noop",), load_entry_points=False)
    pool = DaskPool([], config)
    try:
        pool.resize(3, "backlog")
        pool.client.wait_for_workers(3, timeout=10)
        members = dict(pool.cluster.workers)
        busy_name = sorted(members)[-1]  # the newest, which a plain scale(1) would retire first
        pool.workers[0].in_flight.append(object())  # a slot holding a page on that worker
        pool.workers[0].address[1] = members[busy_name].address
        pool.resize(1, "idle")
        wait_until(lambda: len(pool.cluster.workers) == 1, timeout=10, what="the idle workers retired")
        assert list(pool.cluster.workers) == [busy_name]  # the busy one stays while its page runs
        assert len(pool.live) == 1 and len(pool.cluster.worker_spec) == 1
    finally:
        pool.workers.clear()
        pool.shutdown()


def test_auto_on_an_existing_cluster_means_its_threads_whatever_this_machine_has(tmp_path, noop_archive) -> None:
    from distributed import LocalCluster

    cpus = os.cpu_count() or 1
    archive = noop_archive([3] * (cpus + 3))
    with LocalCluster(n_workers=cpus + 1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        config = dask_config(tmp_path / "out", cluster, workers="auto", min_free_memory_mb=10**9)
        with Engine(config) as engine:  # no probe given: the parent's CPU and memory would hold it back
            summary = engine.run(archive)
            assert engine._pool.worker_bounds() == (1, cpus + 1)
    assert summary.status == "finished"
    assert summary.peak_workers == cpus + 1  # more slots than this machine has cores


def test_auto_on_an_existing_cluster_follows_workers_joining_and_leaving(tmp_path, threads_cluster, monkeypatch) -> None:
    import engine.executors.dask_cluster as dask_cluster
    from engine.executors.dask import ClusterProbe, DaskPool

    monkeypatch.setattr(dask_cluster, "CAPACITY_EVERY", 0.0)
    pool = DaskPool([], dask_config(tmp_path / "out", threads_cluster, workers="auto"))
    try:
        assert pool.worker_bounds() == (1, 1)
        assert isinstance(pool.probe, ClusterProbe)
        threads_cluster.scale(3)
        threads_cluster.wait_for_workers(3)
        wait_until(lambda: pool.worker_bounds() == (1, 3), timeout=10, what="the third thread counted")
        threads_cluster.scale(2)
        wait_until(lambda: pool.worker_bounds() == (1, 2), timeout=10, what="a worker gone counted")
    finally:
        pool.shutdown()
        threads_cluster.scale(1)


def test_fixed_workers_on_an_existing_cluster_are_kept_as_given(tmp_path, threads_cluster) -> None:
    from engine.executors.dask import DaskPool

    pool = DaskPool([], dask_config(tmp_path / "out", threads_cluster, workers="2:5"))
    try:
        assert pool.worker_bounds() == (2, 5)
    finally:
        pool.shutdown()


# --------------------------------------------------------------------------- plugin objects of the host script
STAMP_SOURCE = """
from engine import Field, hookimpl

SUFFIX = "from the host script"


class Stamp:
    name = "stamp"

    def __init__(self, word):
        self.word = word

    @hookimpl
    def pagemill_extract(self, page, ocr, config):
        return [Field("stamp", f"{self.word} {SUFFIX}", 0.9)]
"""


def test_a_plugin_object_defined_in_the_host_script_runs_on_an_existing_cluster(tmp_path, noop_archive,
                                                                                process_cluster, monkeypatch) -> None:
    import sys

    main = sys.modules["__main__"]
    namespace: dict = {"__name__": "__main__"}
    exec(compile(STAMP_SOURCE, "host_script.py", "exec"), namespace)  # as a script's own class is made
    monkeypatch.setattr(main, "Stamp", namespace["Stamp"], raising=False)  # found by name in __main__, as pickle wants
    archive = noop_archive([2, 1])
    config = dask_config(tmp_path / "out", process_cluster)
    summary = Engine(config, plugins=[namespace["Stamp"]("stamped")]).run(archive)  # workers' __main__ has no Stamp
    assert summary.status == "finished" and summary.pages_ok == 3
    stamps = {r["fields"]["stamp"]["value"] for r in results_of(tmp_path / "out").values()}
    assert stamps == {"stamped from the host script"}
