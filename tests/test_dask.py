"""The dask.distributed executor: the same outputs as the local pool on the sample archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.api import Engine
from engine.config import EngineConfig
from engine.sample import generate_sample

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
