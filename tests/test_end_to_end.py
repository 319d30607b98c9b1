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
    digit = str(config.options["flag_digit"])
    value = fields.get("ticket_number")
    if value is not None and str(value.value).endswith(digit):
        return [Issue("flagged_digit", f"ticket number ends in {digit}", field="ticket_number")]
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
    config = EngineConfig(out_dir=str(out), workers="2", plugins=(str(plugin),),
                          options={"flag_digit": flag_digit(sample)})
    summary = Engine(config).run([str(p) for p in sample.documents] + ([str(sample.broken_path)] if sample.broken_path else []))
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return summary, records, out


def flag_digit(sample) -> str:
    """The last digit of the first clean page's ticket number: the third-party rule has a page to flag."""
    first = next(row for row in truth_of(sample).values() if row["clean"])
    return first["fields"]["ticket_number"][-1]


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
    digit = flag_digit(sample)
    flagged = [r for r in pages if str(r["fields"].get("ticket_number", {}).get("value", "")).endswith(digit)]
    first_clean = next(key for key, row in truth_of(sample).items() if row["clean"])
    assert first_clean in {(Path(r["document"]).name, r["page"]) for r in flagged}
    for record in pages:
        codes = {issue["code"] for issue in record["issues"]}
        assert ("flagged_digit" in codes) == (record in flagged)
        if record in flagged:
            assert record["status"] == "review"
    header = (out / "results.csv").read_text("utf-8-sig").splitlines()[0]
    assert "ticket_number" in header and "page_chars" in header


@pytest.mark.slow
def test_the_pages_meant_for_review_are_in_review_for_their_reason(sample, sample_run, tesseract_available) -> None:
    _, records, out = sample_run
    by_page = {(Path(r["document"]).name, r["page"]): r for r in records if r["page"] > 0}
    cases = {row["expect_review"][0]: key for key, row in truth_of(sample).items() if row["expect_review"]}
    assert sorted(cases) == ["duplicate_ticket", "low_confidence", "net_mismatch"]

    def codes(key) -> set[str]:
        return {issue["code"] for issue in by_page[key]["issues"]}

    assert "net_mismatch" in codes(cases["net_mismatch"])
    faded = [issue for issue in by_page[cases["low_confidence"]]["issues"] if issue["code"] == "low_confidence"]
    assert [issue["field"] for issue in faded] == ["truck"]
    repeat = truth_of(sample)[cases["duplicate_ticket"]]["duplicate_of"]
    pair = [cases["duplicate_ticket"], (repeat["document"], repeat["page"])]
    for key, other in (pair, pair[::-1]):  # both pages, each naming the other, whichever finished first
        messages = [i["message"] for i in by_page[key]["issues"] if i["code"] == "duplicate_ticket"]
        assert len(messages) == 1 and f"{other[0]} page {other[1]}" in messages[0]
        assert by_page[key]["status"] == "review"
    for key in cases.values():
        assert by_page[key]["status"] == "review"
    review = (out / "review.csv").read_text("utf-8-sig")
    assert all(key[0] in review for key in cases.values())
