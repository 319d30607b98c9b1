"""Circuit breakers in a run: an open breaker holds back only the pages that call its plugin."""

from __future__ import annotations

from pathlib import Path

from conftest import FAULTS, noop_config
from faults import read_trace
from loguru import logger

from engine.api import Engine

FLAKY = str(Path(__file__).parent / "flaky.py")


def test_pages_that_do_not_call_a_broken_plugin_go_on_and_held_pages_all_finish(noop_archive, tmp_path) -> None:
    archive = noop_archive([8, 8, 8, 8, 8])
    (archive / "service.flaky").write_text("pages: 12\n")  # larger: its pages go first
    trace = tmp_path / "trace"
    options = {"flaky_failures": 4, "flaky_state": str(tmp_path / "flaky"), "flaky_ms": 5, "trace_file": str(trace)}
    config = noop_config(tmp_path / "out", plugins=(FAULTS, FLAKY), options=options, noop_ms=25, max_attempts=3,
                         breaker_threshold=2, breaker_reset_seconds=0.4, retry_base_delay=0.02, retry_max_delay=0.05)
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    try:
        with Engine(config) as engine:
            results = []
            for result in engine.process(archive):
                results.append(result)
                scheduler = engine.session.scheduler
    finally:
        logger.remove(sink)
    assert len(results) == 52 == len({(r.document, r.page) for r in results})
    assert all(r.status != "failed" for r in results)  # held back, not lost, not charged to failure
    breaker = scheduler.breakers.get("flaky", "pagemill_load_page")
    counts = scheduler.breaker_counts()
    assert counts["flaky.pagemill_load_page"]["opened"] >= 1 and counts["flaky.pagemill_load_page"]["closed"] == 1
    assert set(counts) == {"flaky.pagemill_load_page"}
    opened_at = next(at for at, _, state in breaker.transitions if state == "open")
    half_open_at = next(at for at, _, state in breaker.transitions if state == "half_open")
    noop_starts = [at for _, what, at in read_trace(trace) if ".noop page" in what]
    during = [at for at in noop_starts if opened_at < at < half_open_at]
    assert len(during) > 4, "pages that never call the broken plugin waited for its breaker"
    held = [line for line in lines if "held back, not charged" in line]
    assert held and not any("attempt 0" in line for line in held)
