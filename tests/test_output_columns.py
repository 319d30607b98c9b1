"""The columns of results.csv and of the XLSX export come from the template, not from what a run
happened to find."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import noop_config

from engine.api import Engine
from engine.ledger import open_existing
from plugins.template_extract import load_template

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_FIELDS = [spec.name for spec in load_template("truck_ticket").fields]


def header(out: Path) -> list[str]:
    with open(out / "results.csv", newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle))


def test_results_csv_has_every_template_field_in_the_templates_order_even_when_none_was_found(noop_archive, tmp_path):
    out = tmp_path / "out"
    summary = Engine(noop_config(out, plugins=("plugins.template_extract",))).run(str(noop_archive([2])))
    assert summary.pages_ok + summary.pages_review == 2
    assert header(out) == ["document", "page", "status", *TEMPLATE_FIELDS, "confidence", "issues"]
    assert list(summary.field_order) == TEMPLATE_FIELDS
    assert json.loads((out / "report.json").read_text())["field_order"] == TEMPLATE_FIELDS


def test_export_and_resume_keep_the_columns_and_take_none_of_them_for_a_setting(noop_archive, tmp_path):
    out = tmp_path / "out"
    archive = noop_archive([2])
    Engine(noop_config(out, plugins=("plugins.template_extract",))).run(str(archive))
    (out / "results.csv").unlink()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    exported = subprocess.run([sys.executable, "-m", "engine.cli", "export", str(out), "--format", "csv"],
                              capture_output=True, text=True, timeout=60, env=env)
    assert exported.returncode == 0, exported.stderr
    assert header(out)[3:3 + len(TEMPLATE_FIELDS)] == TEMPLATE_FIELDS
    resumed = subprocess.run([sys.executable, "-m", "engine.cli", "resume", str(out), "--no-progress"],
                             capture_output=True, text=True, timeout=60, env=env)
    assert resumed.returncode == 0, resumed.stderr
    with open_existing(out, read_only=True) as ledger:
        config = ledger.last_config()
    assert config["field_order"] == TEMPLATE_FIELDS and "field_order" not in config.get("options", {})
