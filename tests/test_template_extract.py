"""Template extraction alone: labels, value types, units, OCR slips, confidences, bad templates."""

from __future__ import annotations

import pytest

from engine.config import EngineConfig
from engine.errors import ConfigError
from engine.records import OcrResult, PageTask, Word
from plugins.template_extract import (
    extract_fields,
    find_labels,
    load_template,
    pagemill_extract,
)
from plugins.template_values import parse_date, parse_time, parse_value, parse_weight

PAGE = PageTask(document="x.pdf", sha256="0" * 64, index=0, page_count=1)
TICKET = load_template("truck_ticket")


def ocr_of(text: str, confidence: float = 90.0) -> OcrResult:
    lines = tuple(text.splitlines())
    words = tuple(Word(w, confidence, i, left=100 * n) for i, line in enumerate(lines) for n, w in enumerate(line.split()))
    return OcrResult(text=text, lines=lines, words=words, mean_confidence=confidence, engine="tesseract")


def values(text: str, **kwargs) -> dict:
    return {f.name: f.value for f in extract_fields(ocr_of(text, **kwargs), TICKET)}


def test_label_value_lines() -> None:
    text = ("Ticket No.: 104857\nDate: 03/14/2026\nTime In: 2:05 PM\nTruck No.: TR-4187\nHauler: Delgado Hauling\n"
            "Job No.: J-2291\nProduct: Fill Sand\nGross Weight: 72,340 lb\nTare Weight: 31,120 lbs\n"
            "Net Weight: 41,220 lb\nNet Tons: 20.61")
    assert values(text) == {
        "ticket_number": "104857", "date": "2026-03-14", "time": "14:05", "truck": "TR-4187",
        "carrier": "Delgado Hauling", "job": "J-2291", "material": "Fill Sand", "gross_lb": 72340,
        "tare_lb": 31120, "net_lb": 41220, "net_tons": 20.61,
    }


def test_longest_label_wins_net_tons_is_not_net() -> None:
    found = values("Net Tons: 20.61\nNet: 41,220 lb")
    assert found == {"net_tons": 20.61, "net_lb": 41220}


def test_value_on_the_next_line() -> None:
    assert values("Scale Ticket\n558812\nCarrier\nRidge Line Trucking")["ticket_number"] == "558812"
    assert values("Carrier\nRidge Line Trucking")["carrier"] == "Ridge Line Trucking"


def test_two_columns_of_labels_take_values_below_by_position() -> None:
    lines = ("TICKET # DATE", "558812 March 4, 2026")
    words = (Word("TICKET", 90, 0, left=100), Word("#", 90, 0, left=260), Word("DATE", 90, 0, left=1200),
             Word("558812", 91, 1, left=100), Word("March", 92, 1, left=1200), Word("4,", 92, 1, left=1350),
             Word("2026", 92, 1, left=1420))
    fields = {f.name: f.value for f in extract_fields(OcrResult("\n".join(lines), lines, words, 91.0), TICKET)}
    assert fields == {"ticket_number": "558812", "date": "2026-03-04"}


def test_case_spacing_and_ocr_slips_in_labels_and_values() -> None:
    found = values("TICKETNO: 1O4857\nGR0SS WT: 7S,34O lb\ntare : 31,120 LB\nNET:41,22O lb")
    assert found["ticket_number"] == "104857"
    assert found["gross_lb"] == 75340 and found["tare_lb"] == 31120 and found["net_lb"] == 41220


@pytest.mark.parametrize(
    "text, iso",
    [("2026-03-14", "2026-03-14"), ("03/14/2026", "2026-03-14"), ("14 Mar 2026", "2026-03-14"),
     ("March 14, 2026", "2026-03-14"), ("Sept 2, 2025", "2025-09-02"), ("14/03/2026", "2026-03-14"),
     ("O3/14/2O26", "2026-03-14")],
)
def test_dates(text, iso) -> None:
    assert parse_date(text)[0] == iso


@pytest.mark.parametrize("text, hhmm", [("14:05", "14:05"), ("2:05 PM", "14:05"), ("12:30 am", "00:30"),
                                        ("07.45", "07:45"), ("1O:3O", "10:30")])
def test_times(text, hhmm) -> None:
    assert parse_time(text)[0] == hhmm


@pytest.mark.parametrize(
    "text, unit, value",
    [("32,812 kg", "lb", 72338), ("72,340 lb", "lb", 72340), ("36.17 t", "lb", 79741),
     ("20.5 tons", "lb", 41000), ("41,220 lb", "ton", 20.61), ("20.61", "ton", 20.61), ("9,000#", "lb", 9000)],
)
def test_weights_convert_to_the_field_unit(text, unit, value) -> None:
    assert parse_weight(text, unit)[0] == value


def test_money_and_number() -> None:
    assert parse_value("money", "$1,234.5") [0] == 1234.5
    assert parse_value("number", "count 17 items")[0] == 17


def test_confidence_follows_ocr_and_corrections() -> None:
    clean = {f.name: f for f in extract_fields(ocr_of("Gross: 72,340 lb", 95.0), TICKET)}
    blurry = {f.name: f for f in extract_fields(ocr_of("Gross: 72,340 lb", 40.0), TICKET)}
    slipped = {f.name: f for f in extract_fields(ocr_of("Gross: 72,34O lb", 95.0), TICKET)}
    assert 0.9 < clean["gross_lb"].confidence <= 1.0
    assert blurry["gross_lb"].confidence < 0.5
    assert slipped["gross_lb"].confidence < clean["gross_lb"].confidence
    assert clean["gross_lb"].raw == "72,340 lb"


def test_words_glued_to_letters_are_not_numbers() -> None:
    assert "gross_lb" not in values("Gross: Soil")


def test_plugin_hook_uses_config_template(tmp_path) -> None:
    custom = tmp_path / "custom.toml"
    custom.write_text('[[field]]\nname = "po"\nlabels = ["P.O. Number", "PO"]\ntype = "id"\nrequired = true\n')
    fields = pagemill_extract(PAGE, ocr_of("PO: 4471-A"), EngineConfig(template=str(custom)))
    assert [(f.name, f.value) for f in fields] == [("po", "4471-A")]
    assert find_labels("P O number 7", load_template(str(custom)))[0].field.name == "po"


@pytest.mark.parametrize(
    "body, word",
    [("", "no ..field"), ('[[field]]\nname = "x"\n', "labels"), ('[[field]]\nname = "x"\nlabels = ["x"]\ntype = "colour"\n', "type"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\ntype = "weight"\nunit = "stone"\n', "unit"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\npattern = "("\n', "pattern"), ("not toml = = =", "template")],
)
def test_bad_templates_are_config_errors(tmp_path, body, word) -> None:
    path = tmp_path / f"bad{abs(hash(body))}.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=word):
        load_template(str(path))


def test_unknown_bundled_template_names_the_bundled_ones() -> None:
    with pytest.raises(ConfigError, match="truck_ticket"):
        load_template("no_such_template")


def test_a_label_read_with_slips_lowers_the_confidence() -> None:
    clean = {f.name: f for f in extract_fields(ocr_of("Gross: 72,340 lb", 95.0), TICKET)}["gross_lb"]
    slipped = {f.name: f for f in extract_fields(ocr_of("GR0SS: 72,340 lb", 95.0), TICKET)}["gross_lb"]
    assert slipped.value == clean.value
    assert slipped.confidence < clean.confidence
