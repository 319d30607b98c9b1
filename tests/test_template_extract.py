"""Template extraction on hand-built OCR results: labels, layouts, OCR noise, confidences, templates."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.config import EngineConfig
from engine.errors import ConfigError
from engine.records import OcrResult, PageTask, Word
from plugins.template_extract import (
    BELOW,
    FieldSpec,
    Template,
    extract_fields,
    find_labels,
    load_template,
    pagemill_extract,
)

PAGE = PageTask(document="x.pdf", sha256="0" * 64, index=0, page_count=1)
TICKET = load_template("truck_ticket")


def ocr_of(text: str, confidence: float = 90.0, low: dict[str, float] | None = None) -> OcrResult:
    """An OCR result of ``text``: one word per space-separated token, 100 px apart, all read with
    ``confidence`` except the words named in ``low``."""
    low = low or {}
    lines = tuple(text.splitlines())
    words = tuple(Word(word, low.get(word, confidence), index, left=100 + 100 * n, top=50 * index, width=90,
                       height=30)
                  for index, line in enumerate(lines) for n, word in enumerate(line.split()))
    return OcrResult(text=text, lines=lines, words=words, mean_confidence=confidence, engine="tesseract")


def placed(lines: list[list[tuple[str, int]]], confidence: float = 92.0) -> OcrResult:
    """An OCR result from words placed at given x positions, a line a list."""
    words = tuple(Word(text, confidence, index, left=left, top=60 * index, width=20 * len(text), height=30)
                  for index, line in enumerate(lines) for text, left in line)
    texts = tuple(" ".join(text for text, _ in line) for line in lines)
    return OcrResult("\n".join(texts), texts, words, confidence, "tesseract")


def fields_of(ocr: OcrResult) -> dict:
    return {field.name: field for field in extract_fields(ocr, TICKET)}


def values(text: str, **kwargs) -> dict:
    return {name: field.value for name, field in fields_of(ocr_of(text, **kwargs)).items()}


# ------------------------------------------------------------------ layouts
def test_label_value_lines_give_every_field_in_its_normal_form() -> None:
    text = ("Ticket No.: 104857\nDate: 03/14/2026\nTime In: 2:05 PM\nTruck No.: TR-4187\nHauler: Delgado Hauling\n"
            "Job No.: 26-2291\nProduct: Fill Sand\nGross Weight: 72,340 lb\nTare Weight: 31,120 lbs\n"
            "Net Weight: 41,220 lb\nNet Tons: 20.61")
    assert values(text) == {
        "ticket_number": "104857", "date": "2026-03-14", "time": "14:05", "truck": "TR-4187",
        "carrier": "Delgado Hauling", "job": "26-2291", "material": "Fill Sand", "gross_lb": 72340,
        "tare_lb": 31120, "net_lb": 41220, "net_tons": 20.61,
    }


def test_two_fields_on_one_line_split_at_the_second_label() -> None:
    found = values("Date: 14 Mar 2026   Time: 07:45\nTruck: TR-88 Carrier: Ridge Line Trucking")
    assert found == {"date": "2026-03-14", "time": "07:45", "truck": "TR-88", "carrier": "Ridge Line Trucking"}


def test_longest_label_wins_and_labels_are_whole_words() -> None:
    assert values("Net Tons: 20.61\nNet: 41,220 lb") == {"net_tons": 20.61, "net_lb": 41220}
    assert values("NET WEIGHT 41,220 LB\nTONS 20.61") == {"net_lb": 41220, "net_tons": 20.61}
    assert values("Grossman Aggregates 72,340\nEngrossed: 9") == {}
    assert values("Carrier: Pioneer Haulers") == {"carrier": "Pioneer Haulers"}  # "Haulers" is no label
    assert values("SUMMIT MATERIALS YARD") == {}


def test_overlapping_labels_the_first_keeps_its_words() -> None:
    # "TICKET . DATE" would read as the label "ticket date"; "SCALE TICKET" came first and keeps "TICKET"
    ocr = placed([[("SCALE", 160), ("TICKET", 280), (".", 1100), ("DATE", 1310)],
                  [("322510", 160), ("2025-07-16", 1310)]])
    found = fields_of(ocr)
    assert found["ticket_number"].value == "322510" and found["date"].value == "2025-07-16"


def test_value_on_the_next_line_skipping_a_speckle_line() -> None:
    assert values("Scale Ticket\n558812\nCarrier\nRidge Line Trucking")["ticket_number"] == "558812"
    ocr = ocr_of("Material\n. ,\nWashed Concrete Sand", low={".": 10, ",": 5})
    assert fields_of(ocr)["material"].value == "Washed Concrete Sand"


def test_stacked_columns_take_the_values_below_by_position() -> None:
    ocr = placed([[("TIME", 160), ("VEHICLE", 1310)], [("13:03", 133), ("TR-9164", 1310)],
                  [("CARRIER", 160), ("PROJECT", 1310)], [("Sandoval", 160), ("&", 330), ("Sons", 370),
                                                          ("25-5429", 1305)],
                  [("NET", 160), ("TONS", 240)], [("20.13", 160)]])
    found = {name: field.value for name, field in fields_of(ocr).items()}
    assert found == {"time": "13:03", "truck": "TR-9164", "carrier": "Sandoval & Sons", "job": "25-5429",
                     "net_tons": 20.13}


def test_a_text_layer_without_word_positions() -> None:
    text = "TICKET #        DATE\n558812          March 4, 2026\nGross: 72,340 lb"
    found = fields_of(OcrResult(text, tuple(text.splitlines()), (), 100.0, "text-layer"))
    assert {name: field.value for name, field in found.items()} == {
        "ticket_number": "558812", "date": "2026-03-04", "gross_lb": 72340}
    # nothing lowers a text layer's confidence but the values found on the line below their labels
    assert found["gross_lb"].confidence == 1.0
    assert found["ticket_number"].confidence == found["date"].confidence == BELOW


def test_a_value_on_the_labels_line_beats_one_from_below() -> None:
    # a title with the word "ticket" takes the address below it; the real ticket number line wins
    found = values("GRANITE RIDGE WEIGH TICKET\n187 Quarry Road\nTicket No.: 290920")
    assert found["ticket_number"] == "290920"


# -------------------------------------------------------------- OCR noise
def test_ocr_slips_in_labels_and_values() -> None:
    found = values("TICKETNO: 1O4857\nGR0SS WT: 7S,34O lb\ntare : 31,I20 LB\nNET:41,22O lb\nDate: O3/l4/2O26\n"
                   "Tlme: 1O:3O\nTruck: TR-4l87")
    assert found == {"ticket_number": "104857", "gross_lb": 75340, "tare_lb": 31120, "net_lb": 41220,
                     "date": "2026-03-14", "time": "10:30", "truck": "TR-4187"}


def test_a_label_one_letter_off_is_found_when_nothing_better_is() -> None:
    found = fields_of(ocr_of("Matarial: Fill Sand\nGros: 72,340 lb"))
    assert found["material"].value == "Fill Sand" and found["gross_lb"].value == 72340
    exact = fields_of(ocr_of("Material: Fill Sand"))["material"]
    assert found["material"].confidence < exact.confidence
    # not in the middle of a line, and not when the label is found as written
    assert "gross_lb" not in values("Carrier: Bros Gros Freight")
    assert values("Material: Fill Sand\nMatarial: Rip Rap")["material"] == "Fill Sand"


def test_speckles_read_as_words_are_dropped_from_the_ends_of_a_value() -> None:
    ocr = ocr_of("Carrier: , Ridge Line Trucking oe\nMaterial: Rip Rap — .", low={",": 20, "oe": 31, "—": 12, ".": 8})
    found = fields_of(ocr)
    assert found["carrier"].value == "Ridge Line Trucking" and found["material"].value == "Rip Rap"
    assert values("Carrier: Smith Co")["carrier"] == "Smith Co"  # a confident short word stays


def test_glued_units_and_misread_separators() -> None:
    assert values("Gross: 72,340lb\nTare: 31.120 lb\nNet Tons: 23:93") == {
        "gross_lb": 72340, "tare_lb": 31120, "net_tons": 23.93}
    assert values("Net: 41,220 Ibs")["net_lb"] == 41220
    assert values("Gross: Soil")== {}  # letters alone are no number


# ----------------------------------------------------------------- units
@pytest.mark.parametrize(
    "line, name, value",
    [("Gross: 32,812 kg", "gross_lb", 72338), ("Gross: 72,340 lb", "gross_lb", 72340),
     ("Gross: 36.17 t", "gross_lb", 79741), ("Gross: 36.17 tonnes", "gross_lb", 79741),
     ("Gross: 20.5 tons", "gross_lb", 41000), ("Gross: 20.5 short tons", "gross_lb", 41000),
     ("Gross: 9,000#", "gross_lb", 9000), ("Net Tons: 41,220 lb", "net_tons", 20.61),
     ("Net Tonnes: 18.70 t", "net_tons", 20.61), ("Tons: 20.61", "net_tons", 20.61),
     ("Net Tons: 18,700 kg", "net_tons", 20.61)],
)
def test_weights_are_converted_to_the_fields_unit(line, name, value) -> None:
    assert values(line)[name] == value


# ----------------------------------------------------------- value types
def custom_template(tmp_path, body: str):
    path = tmp_path / f"custom{time.perf_counter_ns()}.toml"
    path.write_text(body)
    return load_template(str(path))


TYPED = """
[[field]]
name = "when"
labels = ["when"]
type = "date"
[[field]]
name = "at"
labels = ["at"]
type = "time"
[[field]]
name = "count"
labels = ["count"]
type = "number"
[[field]]
name = "price"
labels = ["price"]
type = "money"
[[field]]
name = "po"
labels = ["P.O. Number", "PO"]
type = "id"
pattern = '[0-9]{4}-[A-Z]'
[[field]]
name = "grade"
labels = ["grade"]
type = "text"
pattern = '[A-D][0-9]'
"""


@pytest.mark.parametrize(
    "line, value",
    [("When: 2026-03-14", "2026-03-14"), ("When: 03/14/2026", "2026-03-14"), ("When: 14 Mar 2026", "2026-03-14"),
     ("When: March 14, 2026", "2026-03-14"), ("When: Sept. 2, 2025", "2025-09-02"), ("When: 14/03/2026", "2026-03-14"),
     ("When: 3/4/26", "2026-03-04"), ("When: Apri1 3, 2O26", "2026-04-03"), ("When: 2nd Feb 2026", "2026-02-02"),
     ("At: 14:05", "14:05"), ("At: 2:05 PM", "14:05"), ("At: 12:30 am", "00:30"), ("At: 07.45", "07:45"),
     ("At: 14h05", "14:05"), ("At: 1O:3O:15", "10:30"),
     ("Count: 17 items", 17), ("Count: 2.5", 2.5), ("Count: l,2O4", 1204),
     ("Price: $1,234.5", "1234.50"), ("Price: USD 99", "99.00"), ("Price: 12,50", "12.50"),
     ("PO: ref 4471-A", "4471-A"), ("P O number 4471-B", "4471-B"), ("PO: 447l-C", "4471-C"),
     ("Grade: mix B2 fine", "B2")],
)
def test_value_types(tmp_path, line, value) -> None:
    found = {f.name: f.value for f in extract_fields(ocr_of(line), custom_template(tmp_path, TYPED))}
    assert list(found.values()) == [value]


@pytest.mark.parametrize("line", ["When: 2026-13-45", "At: 25:70", "Count: none", "PO: 44-A", "Grade: E7"])
def test_values_that_do_not_parse_are_not_fields(tmp_path, line) -> None:
    assert extract_fields(ocr_of(line), custom_template(tmp_path, TYPED)) == []


# ------------------------------------------------------------ confidence
def test_confidence_follows_ocr_label_and_value_quality() -> None:
    clean = fields_of(ocr_of("Gross: 72,340 lb", 95.0))["gross_lb"]
    blurry = fields_of(ocr_of("Gross: 72,340 lb", 40.0))["gross_lb"]
    value_slip = fields_of(ocr_of("Gross: 72,34O lb", 95.0))["gross_lb"]
    label_slip = fields_of(ocr_of("GR0SS: 72,340 lb", 95.0))["gross_lb"]
    one_word_unsure = fields_of(ocr_of("Gross: 72,340 lb", 95.0, low={"72,340": 50.0}))["gross_lb"]
    assert 0.9 < clean.confidence <= 1.0 and blurry.confidence < 0.5
    assert value_slip.value == label_slip.value == clean.value
    assert value_slip.confidence < clean.confidence and label_slip.confidence < clean.confidence
    assert one_word_unsure.confidence < clean.confidence
    assert clean.raw == "72,340 lb" and value_slip.raw == "72,34O lb"
    assert clean.type == "weight"


# ------------------------------------------------------------- templates
def test_plugin_hook_reads_the_template_from_config(tmp_path) -> None:
    custom = tmp_path / "custom.toml"
    custom.write_text('[[field]]\nname = "po"\nlabels = ["P.O. Number", "PO"]\ntype = "id"\nrequired = true\n')
    fields = pagemill_extract(PAGE, ocr_of("PO: 4471-A\nGross: 72,340 lb"), EngineConfig(template=str(custom)))
    assert [(f.name, f.value) for f in fields] == [("po", "4471-A")]
    bundled = pagemill_extract(PAGE, ocr_of("Gross: 72,340 lb"), EngineConfig())
    assert [(f.name, f.value) for f in bundled] == [("gross_lb", 72340)]
    assert find_labels("P O number 7", load_template(str(custom)))[0].field.name == "po"


def test_a_template_is_read_once_and_again_when_it_changes(tmp_path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[field]]\nname = "a"\nlabels = ["a"]\n')
    first = load_template(str(path))
    assert load_template(str(path)) is first
    path.write_text('[[field]]\nname = "b"\nlabels = ["b"]\n')
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert [spec.name for spec in load_template(str(path)).fields] == ["b"]


def test_the_bundled_truck_ticket_template() -> None:
    assert {"ticket_number", "date", "gross_lb", "tare_lb", "net_lb"} <= set(TICKET.required)
    specs = {spec.name: spec for spec in TICKET.fields}
    assert [specs[name].type for name in ("date", "time", "net_lb")] == ["date", "time", "weight"]
    assert specs["net_tons"].unit == "ton" and specs["gross_lb"].unit == "lb"
    assert {spec.role: spec.name for spec in TICKET.fields if spec.role} == {
        "ticket_id": "ticket_number", "gross": "gross_lb", "tare": "tare_lb", "net": "net_lb", "net_tons": "net_tons"}
    assert [spec.name for spec in TICKET.dates] == ["date"]
    assert Path(TICKET.path).read_text().count("\nrole = ") == 5  # declared, not only implied by the names


def test_the_bundled_names_imply_their_roles(tmp_path) -> None:
    path = tmp_path / "old.toml"
    path.write_text('[[field]]\nname = "ticket_number"\nlabels = ["no"]\ntype = "id"\n'
                    '[[field]]\nname = "gross_lb"\nlabels = ["gross"]\ntype = "weight"\n'
                    '[[field]]\nname = "loaded"\nlabels = ["loaded"]\ntype = "weight"\nrole = "tare"\n'
                    '[[field]]\nname = "tare_lb"\nlabels = ["tare"]\ntype = "weight"\n'  # tare is taken
                    '[[field]]\nname = "net_lb"\nlabels = ["net"]\ntype = "text"\n'  # not a weight
                    '[[field]]\nname = "net_tons"\nlabels = ["tons"]\ntype = "weight"\nunit = "kg"\n')  # not tons
    roles = {spec.name: spec.role for spec in load_template(str(path)).fields}
    assert roles == {"ticket_number": "ticket_id", "gross_lb": "gross", "loaded": "tare", "tare_lb": None,
                     "net_lb": None, "net_tons": None}
    built = Template("t", "t.toml", (FieldSpec("net_lb", ("net",), "weight"),))  # a template made in code
    assert built.role("net") is built.fields[0] and built.role("gross") is None


@pytest.mark.parametrize(
    "body, problem",
    [("", "no \\[\\[field\\]\\] entries"), ('[[field]]\nname = "x"\n', "needs labels"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\ntype = "colour"\n', "type must be one of"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\ntype = "weight"\nunit = "stone"\n', "unit must be one of"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\nunit = "kg"\n', "a unit is for weight fields"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\npattern = "("\n', "bad pattern"),
     ("[[field]]\nname = \"x\"\nlabels = [\"x\"]\npattern = '[0-9]*'\n",
      r"field 1 \(x\): pattern '\[0-9\]\*' can match an empty value"),
     ("[[field]]\nname = \"x\"\nlabels = [\"x\"]\npattern = '(?:No\\.)?'\n", "can match an empty value"),
     ("[[field]]\nname = \"x\"\nlabels = [\"x\"]\npattern = '\\b'\n", "can match an empty value"),
     ('[[field]]\nname = "x"\nlables = ["x"]\n', "unknown key lables"),
     ('[[fields]]\nname = "x"\n', "unknown key fields"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\n[[field]]\nname = "x"\nlabels = ["y"]\n', "defined twice"),
     ('[[field]]\nname = "x"\nlabels = ["Net"]\n[[field]]\nname = "y"\nlabels = ["net"]\n', "belongs to both"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\nrequired = "yes"\n', "required must be true or false"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\ntype = "weight"\nrole = "weight"\n',
      r"field 1 \(x\): role must be one of ticket_id, gross, tare, net, net_tons, not 'weight'"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\nrole = "gross"\n', "role 'gross' is for weight fields, not text"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\ntype = "date"\nrole = "ticket_id"\n',
      "role 'ticket_id' is for id or text or number fields, not date"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\ntype = "weight"\nunit = "kg"\nrole = "net_tons"\n',
      r"role 'net_tons' is for a weight in tons \(unit ton or t\), not kg"),
     ('[[field]]\nname = "x"\nlabels = ["x"]\nrole = 3\n', "role must be a string, not 3"),
     ('[[field]]\nname = "a"\nlabels = ["a"]\ntype = "weight"\nrole = "net"\n'
      '[[field]]\nname = "b"\nlabels = ["b"]\ntype = "weight"\nrole = "net"\n', "role 'net' is given to both 'a' and 'b'"),
     ('[[field]]\nname = "gross weight"\nlabels = ["x"]\n', "needs a name"),
     ("not toml = = =", "not readable TOML")],
)
def test_bad_templates_are_config_errors_naming_file_and_problem(tmp_path, body, problem) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=problem) as raised:
        load_template(str(path))
    assert str(path) in str(raised.value)


def test_a_pattern_that_matches_something_loads(tmp_path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text("[[field]]\nname = \"x\"\nlabels = [\"x\"]\npattern = '[0-9]+|[A-Z]{2}-[0-9]*'\n")
    assert load_template(str(path)).fields[0].pattern == "[0-9]+|[A-Z]{2}-[0-9]*"


def test_an_empty_match_of_a_pattern_is_no_value() -> None:
    # a template built in code, not loaded: the loader refuses such patterns
    spec = FieldSpec("ticket_number", ("ticket no",), "id", pattern="[0-9]*", required=True)
    template = Template("t", "t.toml", (spec,))
    [found] = extract_fields(ocr_of("Ticket No: ABC-77"), template)
    assert found.value == "77" and found.raw == "77"  # the first match that holds something
    assert extract_fields(ocr_of("Ticket No: ABC"), template) == []
    text = Template("t", "t.toml", (FieldSpec("grade", ("grade",), "text", pattern="[A-D]*"),))
    assert extract_fields(ocr_of("Grade: fine"), text) == []


def test_unknown_templates_name_what_there_is(tmp_path) -> None:
    with pytest.raises(ConfigError, match="truck_ticket"):
        load_template("no_such_template")
    with pytest.raises(ConfigError, match="not found"):
        load_template(str(tmp_path / "missing.toml"))
