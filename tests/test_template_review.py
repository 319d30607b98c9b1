"""What a weigh ticket's operations team needs from extraction: no value made wrong by a lost unit or
a misread layout, and every value that cannot be read sent to review with a reason a person can act
on (the notes extraction leaves for validation)."""

from __future__ import annotations

import pytest

from engine.config import EngineConfig
from engine.records import OcrResult, PageTask, Word
from plugins import template_notes
from plugins.template_extract import extract_fields, load_template, pagemill_extract, read_page
from plugins.template_labels import find_labels
from plugins.ticket_validate import pagemill_validate

TICKET = load_template("truck_ticket")
REVIEW = 0.6  # below: the default --review-below sends the page to review


def scan(*lines: list[tuple[str, int, float]]) -> OcrResult:
    """An OCR result from words as (text, left, confidence), a line a list; 33 px high, 22 px a letter."""
    words = tuple(Word(text, confidence, index, left=left, top=60 * index, width=22 * len(text), height=33)
                  for index, line in enumerate(lines) for text, left, confidence in line)
    texts = tuple(" ".join(text for text, _, _ in line) for line in lines)
    mean = sum(word.confidence for word in words) / len(words)
    return OcrResult("\n".join(texts), texts, words, mean, "tesseract")


def text_layer(text: str) -> OcrResult:
    return OcrResult(text, tuple(text.splitlines()), (), 100.0, "text-layer")


def fields(ocr: OcrResult) -> dict:
    return {f.name: f for f in extract_fields(ocr, TICKET)}


# ------------------------------------------------------------------ units
def test_a_unit_ocr_was_unsure_of_is_kept_and_sends_the_value_to_review() -> None:
    tare = fields(scan([("TARE:", 161, 96), ("14,823", 324, 95), ("kg", 509, 0)]))["tare_lb"]
    assert tare.value == 32679 and tare.confidence < REVIEW  # 14,823 kg, not 14,823 lb
    tons = fields(scan([("NET", 163, 95), ("TONS:", 267, 95), ("11.06", 483, 85), ("t", 640, 31), (".", 719, 31)]))
    assert tons["net_tons"].value == 12.19 and tons["net_tons"].confidence < REVIEW  # tonnes, not short tons


def test_an_unsure_unit_that_changes_nothing_leaves_the_value_as_sure_as_it_was() -> None:
    gross = fields(scan([("Gross", 162, 97), ("45,440", 483, 96), ("Ib", 652, 49)]))["gross_lb"]
    assert gross.value == 45440 and gross.confidence >= REVIEW


def test_a_stray_letter_after_a_weight_may_have_been_its_unit() -> None:
    gross = fields(scan([("GROSS:", 161, 96), ("30,853", 324, 95), ("k", 509, 12)]))["gross_lb"]
    assert gross.value == 30853 and gross.confidence < REVIEW
    sure = fields(scan([("GROSS:", 161, 96), ("30,853", 324, 95), (".", 509, 12)]))["gross_lb"]
    assert sure.value == 30853 and sure.confidence >= REVIEW  # a dot is a speckle, no unit


@pytest.mark.parametrize("line, name, value", [
    ("NET TONNES: 11.06", "net_tons", 12.19), ("Net Tonnes 16.03", "net_tons", 17.67),
    ("Net (kg) 16,030", "net_lb", 35340), ("Net (kg): 16,030", "net_lb", 35340),
    ("Gross Wt (lbs) 61,260", "gross_lb", 61260), ("Net Tons: 20.61", "net_tons", 20.61),
    ("NET TONNES: 11.06 t", "net_tons", 12.19), ("Net Tonnes: 22.05 tons", "net_tons", 22.05),
])
def test_a_unit_the_label_names_is_the_unit_of_a_bare_number(line, name, value) -> None:
    found = fields(text_layer(line))[name]
    assert found.value == value and found.confidence == 1.0


# ------------------------------------------------------------- header rows
TABLE = [[("Gross", 123, 96), ("Tare", 600, 97), ("Net", 1085, 97), ("Tons", 1560, 96)],
         [("61,260", 123, 96), ("27,900", 603, 97), ("33,360", 1084, 97), ("16.68", 1565, 96)]]
VALUES = {"gross_lb": 61260, "tare_lb": 27900, "net_lb": 33360, "net_tons": 16.68}


def test_labels_in_columns_of_a_header_row_are_one_label_a_column() -> None:
    found = fields(scan(*TABLE))
    assert {name: field.value for name, field in found.items()} == VALUES
    assert fields(scan([("NET", 163, 95), ("TONS:", 245, 95), ("20.13", 483, 95)]))["net_tons"].value == 20.13
    assert [TICKET.fields.index(hit.field) for hit in find_labels("Net\tTons", TICKET)] == [9, 10]
    assert [hit.field.name for hit in find_labels("Net  Tons", TICKET)] == ["net_lb", "net_tons"]


@pytest.mark.parametrize("text", [
    "Gross Tare Net Tons\n61,260 27,900 33,360 16.68",  # single spaces: as many values as labels
    "Gross        Tare        Net         Tons\n61,260       27,900      33,360      16.68",
    "Gross Wt Tare Wt Net Wt\n61,260 lb 27,900 lb 33,360 lb",
])
def test_a_header_row_in_a_text_layer(text) -> None:
    found = {name: field.value for name, field in fields(text_layer(text)).items()}
    assert found == {name: value for name, value in VALUES.items() if name in found} and len(found) >= 3


def test_an_empty_cell_under_a_label_is_seen_by_its_column() -> None:
    reading = read_page(text_layer("Gross        Tare        Net\n61,260                   33,360"), TICKET)
    assert {f.name: f.value for f in reading.fields} == {"gross_lb": 61260, "net_lb": 33360}
    assert [(note.field, note.read) for note in reading.notes.unreadable] == [("tare_lb", "")]


def test_words_of_a_text_value_under_single_spaced_labels_are_not_split_by_counting() -> None:
    assert "material" not in fields(text_layer("Material Job\nRip Rap"))


def test_an_id_is_not_joined_across_a_column_gap() -> None:
    ticket = fields(scan([("Ticket", 160, 93), ("No.:", 308, 92), ("558812", 409, 97), ("2291", 1400, 96)]))
    assert ticket["ticket_number"].value == "558812" and ticket["ticket_number"].confidence >= REVIEW
    assert fields(text_layer("Ticket No.: 558812        12"))["ticket_number"].value == "558812"
    assert fields(text_layer("Ticket No: 5588 12"))["ticket_number"].confidence < REVIEW  # one space: a guess


# ------------------------------------------------------------- ids, text
@pytest.mark.parametrize("line, name, value", [
    ("Vehicle: KA-ZT 881", "truck", "KA-ZT 881"), ("Truck: AB 123", "truck", "AB 123"),
    ("Truck: TR-4187 Carrier: Smith Co", "truck", "TR-4187"), ("Product: #57 Stone", "material", "#57 Stone"),
])
def test_plates_in_two_parts_and_a_number_sign_are_kept(line, name, value) -> None:
    found = fields(text_layer(line))[name]
    assert found.value == value and found.confidence == 1.0


def test_a_negative_weight_keeps_its_sign_and_a_dash_apart_is_punctuation() -> None:
    assert fields(text_layer("Net: -1,200 lb"))["net_lb"].value == -1200
    assert fields(text_layer("Gross - 61,260 lb"))["gross_lb"].value == 61260
    assert fields(text_layer("Job: J-7741"))["job"].value == "J-7741"


# ------------------------------------------------------------ notes, review
PAGE = PageTask(document="t.pdf", sha256="1" * 64, index=0, page_count=1)


def issues_of(ocr: OcrResult, page: PageTask = PAGE) -> list:
    found = {f.name: f for f in pagemill_extract(page, ocr, EngineConfig())}
    return pagemill_validate(page, found, EngineConfig())


def test_a_label_without_a_readable_value_sends_the_page_to_review_saying_what_was_read() -> None:
    ocr = text_layer("Ticket No.: 1\nDate: 03/14/2025\nGross: 3 lb\nTare: 1 lb\nNet: 2 lb\nTons Lio3")
    messages = [(issue.code, issue.message) for issue in issues_of(ocr)]
    assert messages == [("unreadable_value", "net_tons: label found, value not readable (read 'Lio3')")]
    assert "net_tons" not in fields(ocr)


def test_a_label_with_nothing_after_it_is_noted_but_not_one_of_joined_labels() -> None:
    reading = read_page(text_layer("Truck:\nDate/Time: 01/05/2025"), TICKET)
    assert [(note.field, note.read) for note in reading.notes.unreadable] == [("truck", "")]
    assert not read_page(text_layer("Truck: 12\nTruck:"), TICKET).notes.unreadable  # found elsewhere


def test_a_value_on_a_faint_line_below_is_read_when_nothing_else_is() -> None:
    ocr = scan([("NET", 163, 94), ("TONS", 245, 94), (".", 578, 0), (".", 1021, 0)], [("25.88", 36, 13)],
               [("Weighmaster:", 163, 93), ("Dale", 384, 97)])
    tons = fields(ocr)["net_tons"]
    assert tons.value == 25.88 and tons.confidence < REVIEW


def test_an_unreadable_label_is_named_when_a_field_is_missing() -> None:
    ocr = scan([("Ticket", 160, 93), ("No.:", 308, 92), ("909755", 409, 97)], [("JPUGK:", 160, 39),
               ("T-S636", 305, 19)], [("Carrier:", 160, 96), ("Sandoval", 400, 93)])
    [issue] = [issue for issue in issues_of(ocr) if issue.code == "unreadable_label"]
    assert issue.message.startswith("line 'JPUGK: T-S636' starts with a label not recognised")
    assert "truck" in issue.message.split("not found:")[1]


def test_notes_are_for_their_own_page_and_taken_once() -> None:
    ocr = text_layer("Tons Lio3")
    other = PageTask(document="t.pdf", sha256="1" * 64, index=1, page_count=2)
    pagemill_extract(PAGE, ocr, EngineConfig())
    assert template_notes.take(other).unreadable == ()
    assert template_notes.take(PAGE).unreadable[0].read == "Lio3"
    assert template_notes.take(PAGE).unreadable == ()


def test_an_impossible_printed_date_is_said_so() -> None:
    issues = issues_of(text_layer("Ticket No.: 1\nDate: 02/30/2025\nGross: 3 lb\nTare: 1 lb\nNet: 2 lb"))
    assert [(issue.code, issue.message) for issue in issues] == [
        ("invalid_date", "date 02/30/2025 is not a valid date")]
    assert "date" not in fields(text_layer("Date: Feb 2025"))  # no February 20, 2025
