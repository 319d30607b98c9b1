"""Each benchmark runs at a tiny size and prints its table (figures are not judged here)."""

from __future__ import annotations

import json

import pytest

from benchmarks import end_to_end, memory, overhead
from engine.bench import cpu_model
from engine.cli import main as pagemill


def test_pagemill_bench_noop_prints_a_row_per_worker_count(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    code = pagemill(["bench", "--stages", "noop", "--pages", "30", "--workers", "1,2", "--noop-ms", "1",
                     "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "efficiency" in printed
    rows = json.loads(out.read_text())["rows"]
    assert [row["workers"] for row in rows] == [1, 2]
    assert all(row["pages"] == 30 and row["pages_per_second"] > 0 for row in rows)
    assert rows[0]["speedup"] == 1.0
    assert json.loads(out.read_text())["meta"]["cpu"] == cpu_model()  # the model, as the benchmarks' tables say


def test_pagemill_bench_measures_1_worker_when_not_asked_and_says_so(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert pagemill(["bench", "--stages", "noop", "--pages", "20", "--workers", "2", "--noop-ms", "0",
                     "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [row["workers"] for row in rows] == [1, 2]
    assert "baseline, added" in rows[0]["note"] and "baseline" not in rows[1]["note"]
    printed = capsys.readouterr().out
    assert "1-worker baseline, added" in printed
    assert "too short to compare" in printed  # 20 pages of 0 ms: no speed-up claimed


def test_pagemill_bench_help_defines_its_columns(capsys) -> None:
    with pytest.raises(SystemExit):
        pagemill(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "CPU util, CPU seconds of the parent, its workers and their children (tesseract) / (wall x workers)" in text
    assert "speed-up, pages/s over that of 1 worker" in text and "median of --repeat runs" in text


def test_pagemill_bench_draws_a_plot(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "bench.png"
    assert pagemill(["bench", "--stages", "noop", "--pages", "20", "--workers", "1,2", "--noop-ms", "1",
                     "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_overhead_benchmark_prints_both_rates_and_the_ratio(capsys) -> None:
    figures = overhead.main(["--pages", "100", "--noop-ms", "1"])
    printed = capsys.readouterr().out
    assert "Pool.imap_unordered" in printed and "pagemill engine" in printed and "engine / best pool" in printed
    assert figures["engine_rate"] > 0 and figures["pool_rate"] > 0


@pytest.mark.slow
def test_end_to_end_benchmark_prints_its_table(capsys, tesseract_available) -> None:
    figures = end_to_end.main(["--pages", "2", "--no-ocrmypdf"])
    printed = capsys.readouterr().out
    assert "ideal" in printed and "pagemill, 2 workers" in printed and "speed-up" in printed
    assert figures["ideal"] > 0 and figures["engine"] > 0


@pytest.mark.slow
def test_memory_benchmark_prints_its_table(capsys, tesseract_available) -> None:
    figures = memory.main(["--pages", "400", "--early", "100", "--ocr-pages", "1"])
    printed = capsys.readouterr().out
    assert "parent RSS after 400 pages" in printed and "worker + tesseract RSS during OCR" in printed
    assert figures["parent_last_mb"] > 0
    # sampled while tesseract ran: the worker's figure holds its tesseract child too
    assert figures["worker_children_mb"] > 0 and figures["worker_mb"] > figures["worker_own_mb"]
