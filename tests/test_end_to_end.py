"""A run over a generated archive of scanned tickets: fields equal the ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.api import Engine
from engine.config import EngineConfig
from engine.sample import generate_sample

THIRD_PARTY = '''
from engine import hookimpl
from engine.records import Field, Issue


@hookimpl
def pagemill_extract(page, ocr, config):
    return [Field("page_chars", len(ocr.text), 1.0, raw="", type="number")]


@hookimpl
def pagemill_validate(page, fields, config):
    value = fields.get("ticket_number")
    if value is not None and str(value.value).endswith("7"):
        return [Issue("ends_in_seven", "ticket number ends in 7", field="ticket_number")]
    return []
'''


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    return generate_sample(root / "archive", pages=16, seed=7)


@pytest.fixture(scope="module")
def sample_run(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    plugin = out.parent / "third_party_plugin.py"
    plugin.write_text(THIRD_PARTY)
    config = EngineConfig(out_dir=str(out), workers="2", plugins=(str(plugin),))
    summary = Engine(config).run([str(p) for p in sample.documents] + ([str(sample.broken_path)] if sample.broken_path else []))
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return summary, records, out


def truth_of(sample) -> dict[tuple[str, int], dict]:
    rows = [json.loads(line) for line in Path(sample.truth_path).read_text().splitlines()]
    return {(row["document"], row["page"]): row for row in rows}


@pytest.mark.slow
def test_fields_equal_the_ground_truth(sample, sample_run, tesseract_available) -> None:
    summary, records, _ = sample_run
    truth = truth_of(sample)
    by_page = {(Path(r["document"]).name, r["page"]): r for r in records if r["page"] > 0}
    assert set(by_page) == set(truth)
    total = right = 0
    clean_total = clean_right = 0
    for key, row in truth.items():
        fields = by_page[key]["fields"]
        for name, value in row["fields"].items():
            ok = name in fields and fields[name]["value"] == value
            total += 1
            right += ok
            if row.get("clean", True):
                clean_total += 1
                clean_right += ok
    assert clean_right / clean_total >= 0.99, f"{clean_right}/{clean_total} fields right on clean pages"
    assert right / total >= 0.95, f"{right}/{total} fields right"


@pytest.mark.slow
def test_broken_file_fails_alone_and_third_party_plugin_adds_field_and_issue(sample, sample_run, tesseract_available) -> None:
    summary, records, out = sample_run
    failed = [r for r in records if r["status"] == "failed"]
    assert [Path(r["document"]).name for r in failed] == [Path(sample.broken_path).name]
    assert failed[0]["error"]["class"] == "permanent"
    assert summary.exit_code == 1
    pages = [r for r in records if r["page"] > 0]
    assert all(r["fields"]["page_chars"]["value"] > 20 for r in pages)
    sevens = [r for r in pages if str(r["fields"].get("ticket_number", {}).get("value", "")).endswith("7")]
    for record in sevens:
        assert record["status"] == "review"
        assert "ends_in_seven" in {issue["code"] for issue in record["issues"]}
    header = (out / "results.csv").read_text().splitlines()[0]
    assert "ticket_number" in header and "page_chars" in header
