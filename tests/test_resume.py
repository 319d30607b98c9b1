"""Nothing lost: kill -9 of the whole run at random moments, resume, every page exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def runs_recorded(out: Path) -> int:
    """Runs in the ledger of ``out`` (0 while there is none yet), read without creating it."""
    if not (out / "ledger.sqlite").exists():
        return 0
    try:
        with sqlite3.connect(f"file:{out / 'ledger.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("select count(*) from runs").fetchone()[0]
    except sqlite3.Error:
        return 0  # still being made


def comparable(out: Path) -> list[tuple]:
    rows = []
    for line in (out / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        fields = {k: v["value"] for k, v in record["fields"].items()}
        rows.append((Path(record["document"]).name, record["page"], record["status"], json.dumps(fields, sort_keys=True),
                     json.dumps(record["issues"], sort_keys=True)))
    return sorted(rows)


@pytest.mark.slow
def test_kill_9_at_five_random_moments_then_resume_equals_an_uninterrupted_run(noop_archive, tmp_path) -> None:
    archive = noop_archive([12, 9, 15, 6, 10, 8])  # 60 pages
    run_args = ["--plugin", "plugins.noop", "--noop-ms", "250", "--workers", "2", "--no-progress"]

    reference = tmp_path / "reference"
    done = subprocess.run(command("run", str(archive), "--out", str(reference), *run_args), env=env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    expected = comparable(reference)
    assert len(expected) == 60

    out = tmp_path / "killed"
    rng = random.Random(20261124)
    kills = 0
    for attempt in range(5):
        args = command("run", str(archive), "--out", str(out), *run_args) if attempt == 0 else command(
            "resume", str(out), "--no-progress")
        process = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True)
        # the random moment counts from the run's start (its row in the ledger), not from the
        # process's: on a loaded machine Python's start-up alone can outlast the shortest wait
        wait_until(lambda: process.poll() is not None or runs_recorded(out) > attempt, what="the run recorded")
        time.sleep(rng.uniform(0.8, 2.0))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the parent and every worker at once
            kills += 1
        process.wait(timeout=30)
        time.sleep(0.2)
    assert kills >= 3, "the run finished before most kills: make the stage slower"

    final = subprocess.run(command("resume", str(out), "--no-progress"), env=env(), capture_output=True, text=True,
                           timeout=300)
    assert final.returncode == 0, final.stderr
    assert comparable(out) == expected

    with sqlite3.connect(out / "ledger.sqlite") as db:
        (pages,) = db.execute("select count(*) from pages").fetchone()
        (distinct,) = db.execute("select count(distinct sha256 || ':' || page_index) from pages").fetchone()
        (runs,) = db.execute("select count(*) from runs").fetchone()
    assert pages == distinct == 60
    assert runs == 6
