"""How ``pagemill bench`` gets its figures: the 1-worker baseline, what is inside the timed region,
what is too short to compare, whose memory and CPU are counted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest

from engine.bench import (
    BASELINE_ADDED,
    BASELINE_TOO_SHORT,
    TOO_SHORT,
    Measurement,
    format_table,
    generate_archive,
    measure_once,
    summarise,
    with_baseline,
)
from engine.bench_probes import TreeRss, tree_rss
from tests.conftest import noop_config
from tests.waiting import wait_until


def run(wall: float, pages: int = 100, cpu: float | None = None, children: bool = False) -> Measurement:
    return Measurement(wall=wall, pages=pages, cpu_seconds=wall if cpu is None else cpu, parent_rss_mb=50.0,
                       worker_rss_mb=100.0 if children else 40.0, children_seen=children, started_in_run=0)


def test_speedup_is_over_the_1_worker_run_whatever_the_order_of_the_counts() -> None:
    rows = {r.workers: r for r in summarise({2: [run(5.0)], 1: [run(8.0)]})}
    assert (rows[1].speedup, rows[1].efficiency) == (1.0, 1.0)
    assert (rows[2].speedup, rows[2].efficiency) == (1.6, 0.8)


def test_a_1_worker_baseline_is_measured_first_when_the_counts_lack_it() -> None:
    assert with_baseline([2]) == ([1, 2], True)
    assert with_baseline([4, 1, 2, 2]) == ([4, 1, 2], False)
    rows = summarise({1: [run(10.0)], 2: [run(5.5)]}, baseline_added=True)
    assert rows[0].note == BASELINE_ADDED and rows[1].note == ""
    assert rows[1].speedup == pytest.approx(1.82, abs=0.01)


def test_cpu_utilisation_and_wall_are_medians_of_the_repeats() -> None:
    rows = summarise({1: [run(4.0, cpu=4.0), run(2.0, cpu=1.0), run(3.0, cpu=3.0)]})
    assert rows[0].runs == 3 and rows[0].wall_seconds == 3.0
    assert rows[0].cpu_utilisation == 1.0  # the per-run figures are 1.0, 0.5 and 1.0


def test_a_run_under_a_second_claims_no_speedup() -> None:
    rows = summarise({1: [run(0.4)], 2: [run(0.3)]})
    assert not any(r.comparable for r in rows)
    assert all(TOO_SHORT in r.note for r in rows)
    table = format_table(rows)
    assert "too short to compare" in table
    assert "1.33" not in table  # the speed-up of 0.4 s against 0.3 s is not printed
    for line in table.splitlines()[2:4]:
        assert line.split("|")[4].strip() == "–"  # the speed-up column


def test_a_long_run_against_a_short_baseline_claims_no_speedup_either() -> None:
    rows = summarise({1: [run(0.5)], 2: [run(1.5, pages=300)]})
    assert not rows[1].comparable and rows[1].note == BASELINE_TOO_SHORT


def test_the_worker_column_says_it_holds_tesseract_when_it_does() -> None:
    with_ocr = format_table(summarise({1: [run(3.0, children=True)]}))
    without = format_table(summarise({1: [run(3.0)]}))
    assert "worker + tesseract MB" in with_ocr.splitlines()[0]
    assert "worker MB" in without.splitlines()[0] and "tesseract" not in without.splitlines()[0]


def test_a_worker_s_memory_includes_its_children() -> None:
    shell = subprocess.Popen(["bash", "-c", "sleep 30 & wait"])

    def sampled_with_child() -> TreeRss | None:
        size = tree_rss([shell.pid]).get(shell.pid)
        return size if size is not None and size.children else None

    try:
        size = wait_until(sampled_with_child, timeout=10, what="the shell's child")
        assert size.children == 1 and size.children_mb > 0
        assert size.total_mb == pytest.approx(size.own_mb + size.children_mb)
    finally:
        for child in psutil.Process(shell.pid).children():
            child.kill()
        shell.kill()
        shell.wait()


def test_workers_start_and_are_ready_before_the_clock(tmp_path, noop_archive) -> None:
    folder = noop_archive([5, 5])
    measured = measure_once(noop_config(None, noop_ms=0), [str(folder)], 2)
    assert measured.pages == 10
    assert measured.started_in_run == 0


def test_cpu_of_workers_that_ended_during_the_run_is_counted(tmp_path, noop_archive) -> None:
    folder = noop_archive([6])
    # every worker leaves after one task: none of those alive at the start is alive at the end
    measured = measure_once(noop_config(None, noop_ms=30, max_pages_per_worker=1), [str(folder)], 1)
    assert measured.pages == 6 and measured.started_in_run >= 6
    assert measured.cpu_seconds >= 0.09  # 6 pages of 30 ms busy work, half of it at least


def test_the_generated_archive_is_made_in_another_process(tmp_path, monkeypatch) -> None:
    import engine.sample

    def not_here(*args, **kwargs):
        raise AssertionError("the archive is generated in the measuring process")

    monkeypatch.setattr(engine.sample, "generate_sample", not_here)  # this process only
    folder = generate_archive(tmp_path / "archive", 2)
    documents = list(Path(folder).iterdir())
    assert documents and all(path.suffix == ".pdf" for path in documents)
