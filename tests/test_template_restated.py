"""The net tons printed right after the net, with no label of their own: read as the net tons,
and nothing else ever taken for them."""

from __future__ import annotations

from datetime import date

import pytest

from engine.records import OcrResult, Word
from plugins.template_extract import extract_fields, load_template
from plugins.template_restated import RESTATED
from plugins.ticket_validate import check_fields

TICKET = load_template("truck_ticket")


def text_layer(text: str) -> dict:
    return {f.name: f for f in extract_fields(OcrResult(text, tuple(text.splitlines())), TICKET)}


def scanned(text: str, confidence: float = 90.0) -> dict:
    """``text`` as OCR reads it: a word per token, 100 px apart, at one confidence."""
    lines = tuple(text.splitlines())
    words = tuple(Word(word, confidence, index, left=100 + 100 * n, top=50 * index, width=90, height=30)
                  for index, line in enumerate(lines) for n, word in enumerate(line.split()))
    return {f.name: f for f in extract_fields(OcrResult(text, lines, words, confidence, "tesseract"), TICKET)}


@pytest.mark.parametrize("line, raw", [
    ("Net: 41,340 lb (20.67 tons)", "20.67 tons"), ("Net 41,340 lb 20.67 Tons", "20.67 Tons"),
    ("NET WEIGHT 41,340 LB / 20.67 TN", "20.67 TN"), ("Net: 41,340 lb = 20.67 short tons", "20.67 short tons"),
    ("Net (lb): 41,340 (20.67 tons)", "20.67 tons"),  # the net's unit named in its label
    ("Net 41,340 lb 20.67tons", "20.67 tons"),
])
def test_the_net_tons_after_the_net_are_read(line, raw) -> None:
    found = text_layer(line)
    assert found["net_lb"].value == 41340 and found["net_lb"].confidence == 1.0
    assert (found["net_tons"].value, found["net_tons"].raw) == (20.67, raw)
    assert found["net_tons"].confidence == RESTATED


def test_on_a_scan_the_tons_words_give_the_confidence() -> None:
    found = scanned("Net: 41,340 lb (20.67 tons)", 80.0)
    assert found["net_lb"].value == 41340 and found["net_tons"].value == 20.67
    assert found["net_tons"].confidence == pytest.approx(0.8 * RESTATED, abs=1e-3)
    below = text_layer("Net Weight\n41,340 lb (20.67 tons)")  # the net read below its label
    assert below["net_tons"].value == 20.67 and below["net_tons"].confidence < below["net_lb"].confidence


@pytest.mark.parametrize("text", [
    "Gross: 72,340 lb (36.17 tons)",  # tons of the gross are not the net tons
    "Tare 31,120 lb 15.56 tons",
    "Net 41,340 lb Load 2 20.67 tons",  # words between
    "Net 41,340 (20.67 tons)",  # the net's own unit not known
    "Net 41,340 lb 20.67",  # no unit: any number
    "Net 41,340 lb 20.67 kg",  # not the net tons' unit
    "Net: 41,340 lb (18.75 t)",  # tonnes are not short tons
    "Net: 20.67 tons (41,340 lb)",  # the net itself in tons: nothing restated in tons
])
def test_nothing_else_is_taken_for_the_net_tons(text) -> None:
    assert "net_tons" not in text_layer(text)


def test_the_net_tons_of_their_own_label_win() -> None:
    found = text_layer("Net: 41,340 lb (20.67 tons)\nNet Tons: 20.70")
    assert found["net_tons"].value == 20.7 and found["net_tons"].confidence == 1.0


def test_restated_tons_that_disagree_with_the_net_go_to_review() -> None:
    found = text_layer("Net 41,340 lb 36 ST")
    assert found["net_tons"].value == 36.0
    issues = check_fields(found, (), 0.6, today=date(2026, 6, 1))
    assert [(i.code, i.field) for i in issues] == [("tons_mismatch", "net_tons")]


def test_a_metric_template_reads_the_tonnes_after_the_net(tmp_path) -> None:
    path = tmp_path / "metric.toml"
    path.write_text('[[field]]\nname = "net_kg"\nlabels = ["net"]\ntype = "weight"\nunit = "kg"\nrole = "net"\n'
                    '[[field]]\nname = "net_t"\nlabels = ["tonnes"]\ntype = "weight"\nunit = "t"\nrole = "net_tons"\n')
    metric = load_template(str(path))
    read = {f.name: f.value for f in extract_fields(OcrResult("Net: 18,750 kg (18.75 t)"), metric)}
    assert read == {"net_kg": 18750, "net_t": 18.75}
    assert {f.name for f in extract_fields(OcrResult("Net: 18,750 kg (20.67 tons)"), metric)} == {"net_kg"}
    plain = tmp_path / "plain.toml"
    plain.write_text(path.read_text().replace('role = "net"\n', "").replace('role = "net_tons"\n', ""))
    unroled = load_template(str(plain))
    assert {f.name for f in extract_fields(OcrResult("Net: 18,750 kg (18.75 t)"), unroled)} == {"net_kg"}
