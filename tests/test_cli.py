"""The pagemill command: exit codes, outputs, plugins listing, cancellation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAULTS

PAGEMILL = [sys.executable, "-m", "engine.cli"]


def pagemill(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([*PAGEMILL, *args], capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def test_no_command_is_usage_error() -> None:
    assert pagemill().returncode == 2


def test_bad_option_value_is_usage_error(tmp_path) -> None:
    done = pagemill("run", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "0:0")
    assert done.returncode == 2
    assert "workers" in done.stderr and "Traceback" not in done.stderr


def test_missing_input_is_usage_error(tmp_path) -> None:
    done = pagemill("run", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "input not found" in done.stderr


def test_broken_plugin_is_one_line_usage_error(tmp_path) -> None:
    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text("raise RuntimeError('boom at import')\n")
    done = pagemill("plugins", "--plugin", str(plugin))
    assert done.returncode == 2
    assert "bad_plugin" in done.stderr and "boom at import" in done.stderr
    assert "Traceback" not in done.stderr


def test_plugins_lists_builtins_with_origin_and_hooks(tmp_path) -> None:
    done = pagemill("plugins", "--plugin", FAULTS)
    assert done.returncode == 0, done.stderr
    for name in ("pdf_ingest", "tesseract_ocr", "template_extract", "ticket_validate", "faults"):
        assert name in done.stdout
    assert "entry point" in done.stdout and "extract" in done.stdout


def test_run_all_done_exit_0_and_outputs(noop_archive, tmp_path) -> None:
    archive = noop_archive([2, 3])
    out = tmp_path / "out"
    done = pagemill("run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--workers", "2", "--no-progress")
    assert done.returncode == 0, done.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert {json.loads(line)["status"] for line in lines} <= {"ok", "review"}
    report = json.loads((out / "report.json").read_text())
    assert report["pages"] == 5 or report.get("pages_total") == 5
    for name in ("results.csv", "review.csv", "ledger.sqlite"):
        assert (out / name).exists()


def test_run_with_a_failed_page_exits_1(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    (archive / "junk.pdf").write_bytes(b"this is not a pdf at all")
    out = tmp_path / "out"
    done = pagemill("run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--no-progress")
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "junk.pdf" in line and "ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sum(r["status"] == "failed" for r in records) == 1
    assert sum(r["status"] != "failed" for r in records) == 2


def test_critical_stop_exits_3(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    done = pagemill("run", str(archive), "--out", str(blocker / "out"), "--plugin", "plugins.noop", "--no-progress")
    assert done.returncode == 3, done.stderr
    assert "not writable" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_sigint_cancels_keeps_finished_pages_and_exits_130(noop_archive, tmp_path) -> None:
    archive = noop_archive([40])
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen(
        [*PAGEMILL, "run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--workers", "2",
         "--no-progress", "--grace", "5", "--noop-ms", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    # noop pages take 200 ms each: interrupt once a few are done
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "ledger.sqlite").exists():
        time.sleep(0.1)
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "pagemill resume" in stderr
    kept = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert 0 < len(kept) < 40
    assert len({r["page"] for r in kept}) == len(kept)
    again = pagemill("resume", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr
    final = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["page"] for r in final) == list(range(1, 41))


def test_paths_on_stdin_with_dash(noop_archive, tmp_path) -> None:
    archive = noop_archive([2, 1])
    out = tmp_path / "out"
    listing = "\n".join(str(p) for p in sorted(archive.iterdir())) + "\n"
    done = pagemill("run", "-", "--out", str(out), "--plugin", "plugins.noop", "--no-progress", input=listing)
    assert done.returncode == 0, done.stderr
    assert (out / "results.jsonl").read_text().count("\n") == 3


def test_every_attempt_is_in_the_audit_trail(noop_archive, tmp_path) -> None:
    import sqlite3

    archive = noop_archive([3])
    out = tmp_path / "out"
    state = tmp_path / "fired"
    done = pagemill("run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--plugin", FAULTS,
                    "--no-progress", "--config", str(_fault_config(tmp_path, state)))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(out / "ledger.sqlite") as db:
        rows = db.execute("select page_index, attempt, error_class from attempts order by page_index, attempt").fetchall()
    assert rows == [(0, 1, None), (1, 1, "transient"), (1, 2, None), (2, 1, None)]


def _fault_config(tmp_path, state) -> Path:
    path = tmp_path / "pagemill.toml"
    path.write_text(f'retry_base_delay = 0.05\n[options]\nfault_kind = "transient"\nfault_match = "page 2"\n'
                    f'fault_limit = 1\nfault_state = "{state}"\n')
    return path
