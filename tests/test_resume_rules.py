"""What a second run into the same output folder redoes, and what it leaves alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import FAULTS, noop_config

from engine.api import Engine
from plugins.noop import write_noop_document

ROOT = Path(__file__).resolve().parents[1]


def pages_of(out: Path) -> list[tuple[str, int, str]]:
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return sorted((Path(r["document"]).name, r["page"], r["status"]) for r in records)


def test_done_pages_are_skipped_renamed_file_not_redone_changed_file_redone(noop_archive, tmp_path) -> None:
    archive = noop_archive([2, 3])
    out = tmp_path / "out"
    first = Engine(noop_config(out)).run(archive)
    assert first.pages_ok + first.pages_review == 5
    (archive / "doc000.noop").rename(archive / "renamed.noop")
    second = Engine(noop_config(out)).run(archive)
    assert second.pages_skipped == 5 and second.pages_ok + second.pages_review == 0
    write_noop_document(archive / "doc001.noop", 4)  # changed content: a new document
    third = Engine(noop_config(out)).run(archive)
    assert third.pages_ok + third.pages_review == 4
    assert third.pages_skipped == 2


def test_failed_pages_are_kept_unless_retry_failed_and_fresh_redoes_all(noop_archive, tmp_path) -> None:
    archive = noop_archive([3])
    out = tmp_path / "out"
    options = {"fault_kind": "permanent", "fault_match": "page 2", "fault_limit": 1, "fault_state": str(tmp_path / "f")}
    first = Engine(noop_config(out, plugins=(FAULTS,), options=options)).run(archive)
    assert first.pages_failed == 1
    again = Engine(noop_config(out, plugins=(FAULTS,), options=options)).run(archive)
    assert again.pages_skipped == 3 and again.pages_failed == 0
    retried = Engine(noop_config(out, plugins=(FAULTS,), options=options, retry_failed=True)).run(archive)
    assert retried.pages_skipped == 2 and retried.pages_failed == 0
    assert [s for _, _, s in pages_of(out)] == ["ok", "ok", "ok"]
    fresh = Engine(noop_config(out, fresh=True)).run(archive)
    assert fresh.pages_skipped == 0 and fresh.pages_ok == 3
    assert len(pages_of(out)) == 3


def test_status_and_runs_list_the_runs(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    out = tmp_path / "out"
    Engine(noop_config(out)).run(archive)
    Engine(noop_config(out)).run(archive)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    status = subprocess.run([sys.executable, "-m", "engine.cli", "status", str(out), "--json"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert [run["status"] for run in data["runs"]] == ["finished", "finished"]
    assert data["pages"]["pages"] == 2
    runs = subprocess.run([sys.executable, "-m", "engine.cli", "runs", str(out)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert runs.returncode == 0 and "finished" in runs.stdout
    missing = subprocess.run([sys.executable, "-m", "engine.cli", "status", str(tmp_path)], capture_output=True,
                             text=True, env=env, timeout=60)
    assert missing.returncode == 2 and "no pagemill ledger" in missing.stderr  # a wrong folder: usage
