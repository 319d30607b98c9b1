"""Labels and layout on real-looking weigh tickets: id words after a label, headings that are not
labels, header rows with values beneath, compound labels, and how confidence follows the reading."""

from __future__ import annotations

import time

import pytest

from engine.errors import ConfigError
from engine.records import OcrResult, Word
from plugins.template_extract import BELOW, extract_fields, find_labels, load_template

TICKET = load_template("truck_ticket")
REVIEW = 0.6  # below: the default --review-below sends the page to review


def read(text: str) -> dict:
    """Fields of the bundled template in a text layer (every word confidence 1.0)."""
    return {f.name: f for f in extract_fields(OcrResult(text, tuple(text.splitlines())), TICKET)}


def scanned(text: str, confidence: float = 95.0) -> dict:
    """Fields of the bundled template in an OCR result, one word per token, all equally sure."""
    lines = tuple(text.splitlines())
    words = tuple(Word(word, confidence, index, left=100 + 120 * n, top=50 * index, width=100, height=30)
                  for index, line in enumerate(lines) for n, word in enumerate(line.split()))
    return {f.name: f for f in extract_fields(OcrResult(text, lines, words, confidence), TICKET)}


# ------------------------------------------------------------- id labels
@pytest.mark.parametrize("line, name, value", [
    ("Ticket Nbr: 558812", "ticket_number", "558812"), ("Ticket ID: 558812", "ticket_number", "558812"),
    ("Ticket Num 558812", "ticket_number", "558812"), ("Ticket #558812", "ticket_number", "558812"),
    ("Truck ID: TR-88", "truck", "TR-88"), ("Truck No. 12 Carrier: Smith Co", "truck", "12"),
])
def test_id_words_after_a_label_are_part_of_the_label(line, name, value) -> None:
    found = read(line)[name]
    assert found.value == value and found.confidence == 1.0


@pytest.mark.parametrize("line, name", [("Ticket: Nbr", "ticket_number"), ("Truck: None", "truck"),
                                        ("Job: Smith Residence", "job"), ("Truck: TR", "truck")])
def test_an_id_without_a_digit_is_no_id(line, name) -> None:
    assert name not in read(line)


def test_words_before_the_colon_belong_to_the_label() -> None:
    found = read("Truck/Trailer: 77")["truck"]
    assert found.value == "77" and REVIEW < found.confidence < 1.0  # "Trailer" makes the label less certain
    assert read("Date (mm/dd/yy): 03/04/25")["date"].value == "2025-03-04"


# ------------------------------------------------------ headings, columns
def test_a_heading_does_not_give_the_ticket_number() -> None:
    text = "SCALE TICKET\n1234 Quarry Road\nTICKET NO   DATE\n558812   03/04/2025"
    found = read(text)
    assert found["ticket_number"].value == "558812" and found["date"].value == "2025-03-04"
    assert "ticket_number" not in read("SCALE TICKET\n1234 Quarry Road")
    assert "ticket_number" not in read("GRANITE RIDGE WEIGH TICKET 1234 Quarry Road")


def test_a_weak_label_still_reads_a_value_that_fills_its_place() -> None:
    assert read("Scale Ticket\n558812")["ticket_number"].value == "558812"
    assert read("Ticket: 558812")["ticket_number"].value == "558812"
    # a strong label wins over a weak one wherever they are
    found = read("Ticket: 111111\nTicket No.: 222222")["ticket_number"]
    assert found.value == "222222" and found.confidence == 1.0


def test_a_header_row_value_under_its_column_wins_over_the_line_below_a_heading() -> None:
    words = (Word("SCALE", 95, 0, 100, 0, 110, 30), Word("TICKET", 95, 0, 225, 0, 130, 30),
             Word("1234", 95, 1, 100, 50, 90, 30), Word("Quarry", 95, 1, 200, 50, 120, 30),
             Word("Road", 95, 1, 330, 50, 90, 30),
             Word("TICKET", 95, 2, 100, 100, 130, 30), Word("NO", 95, 2, 240, 100, 50, 30),
             Word("DATE", 95, 2, 1300, 100, 90, 30),
             Word("558812", 95, 3, 100, 150, 150, 34), Word("January", 40, 3, 1210, 150, 260, 40),
             Word("4,", 95, 3, 1490, 150, 40, 34), Word("2025", 95, 3, 1545, 150, 100, 34))
    lines = ("SCALE TICKET", "1234 Quarry Road", "TICKET NO DATE", "558812 January 4, 2025")
    found = {f.name: f for f in extract_fields(OcrResult("\n".join(lines), lines, words, 90), TICKET)}
    # "January" starts left of the DATE label but lies under it: it belongs to the date's column
    assert found["ticket_number"].value == "558812" and found["date"].value == "2025-01-04"
    assert found["ticket_number"].confidence == pytest.approx(0.95 * BELOW)


# ------------------------------------------- fixed-width printouts (Courier)
@pytest.mark.parametrize("line, name, value", [
    ("TICKET  NO. 104857", "ticket_number", "104857"), ("TICKET   NO: 104857", "ticket_number", "104857"),
    ("SCALE  TICKET  NO  104857", "ticket_number", "104857"), ("TICKET  #  104857", "ticket_number", "104857"),
    ("TRUCK  NO. TR-4187", "truck", "TR-4187"), ("NET  WEIGHT:  41,220 LB", "net_lb", 41220),
    ("TIME  IN  14:05", "time", "14:05"), ("NET  TONS: 20.61", "net_tons", 20.61),
])
def test_a_label_printed_with_double_spaces_inside_it_is_found(line, name, value) -> None:
    found = read(line)[name]
    assert found.value == value and found.confidence == 1.0
    assert [hit.field.name for hit in find_labels(line, TICKET)] == [name]


def test_double_spaced_labels_on_one_line_each_take_their_own_value() -> None:
    found = read("TICKET  NO. 104857    TRUCK  NO. TR-4187\nDATE  IN  03/14/2026    JOB  NO.  26-2291")
    assert {name: field.value for name, field in found.items()} == {
        "ticket_number": "104857", "truck": "TR-4187", "date": "2026-03-14", "job": "26-2291"}


def test_spaces_between_two_labels_still_part_columns() -> None:
    assert [hit.field.name for hit in find_labels("Gross  Tare  Net  Tons", TICKET)] == [
        "gross_lb", "tare_lb", "net_lb", "net_tons"]
    assert [hit.field.name for hit in find_labels("Net:  Tons", TICKET)] == ["net_lb", "net_tons"]
    assert [hit.field.name for hit in find_labels("DATE  TIME", TICKET)] == ["date", "time"]
    # a heading, then a label in a column of its own: "Ticket" and "Date" are no "ticket date"
    assert [hit.field.name for hit in find_labels("SCALE TICKET          DATE: 03/14/2026", TICKET)] == [
        "ticket_number", "date"]
    found = read("SCALE TICKET          DATE: 03/14/2026")
    assert found["date"].value == "2026-03-14" and "ticket_number" not in found
    # a tab (a gap OCR measured between words) always parts columns
    assert [hit.field.name for hit in find_labels("Ticket\tNo. 104857", TICKET)] == ["ticket_number"]
    assert find_labels("Ticket\tNo. 104857", TICKET)[0].end == len("Ticket")


def test_a_fixed_width_text_layer_pdf_gives_its_fields(tmp_path) -> None:
    from ingest_builders import ingest_and_load
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    rows = ["GRANITE RIDGE QUARRY          SCALE TICKET", "TICKET  NO. 104857      DATE:  03/14/2026",
            "TRUCK  NO. TR-4187      CARRIER:  DELGADO HAULING", "GROSS  WEIGHT:  72,340 LB",
            "TARE  WEIGHT:   31,120 LB", "NET  WEIGHT:    41,220 LB", "NET  TONS:      20.61"]
    pdf = canvas.Canvas(str(tmp_path / "courier.pdf"), pagesize=letter)
    pdf.setFont("Courier", 10)
    for number, row in enumerate(rows):
        pdf.drawString(72, 700 - 14 * number, row)
    pdf.save()
    _, [content] = ingest_and_load(tmp_path / "courier.pdf")
    assert content.source == "text-layer" and "TICKET  NO." in content.text  # the printout's spaces are kept
    found = read(content.text)
    assert {name: field.value for name, field in found.items()} == {
        "ticket_number": "104857", "date": "2026-03-14", "truck": "TR-4187", "carrier": "DELGADO HAULING",
        "gross_lb": 72340, "tare_lb": 31120, "net_lb": 41220, "net_tons": 20.61}
    assert all(field.confidence == 1.0 for field in found.values())


def test_disagreeing_candidates_of_the_same_rank_are_a_guess() -> None:
    found = read("Ticket No: 111111\nTicket No: 222222")["ticket_number"]
    assert found.value == "111111" and found.confidence < REVIEW
    assert read("Ticket No: 111111\nTicket No: 111111")["ticket_number"].confidence == 1.0


# --------------------------------------------------------- compound labels
@pytest.mark.parametrize("text", ["Date/Time: 01/05/2025 14:05", "Date & Time: 01/05/2025 14:05",
                                  "Date and Time: 01/05/2025 2:05 PM", "DATE/TIME\n01/05/2025 14:05"])
def test_a_compound_label_gives_both_fields(text) -> None:
    found = read(text)
    assert found["date"].value == "2025-01-05" and found["time"].value == "14:05"
    assert found["date"].confidence == found["time"].confidence  # neither is a worse fit than the other


def test_a_compound_label_with_one_value_gives_one_field() -> None:
    found = read("Date/Time: 01/05/2025")
    assert found["date"].value == "2025-01-05" and "time" not in found  # "2025" is not 20:25


# ------------------------------------------------------------ confidence
def test_confidence_drops_for_a_value_from_the_next_line() -> None:
    same = scanned("Material: Fill Sand")["material"]
    below = scanned("Material\nFill Sand")["material"]
    assert same.value == below.value == "Fill Sand"
    assert below.confidence == pytest.approx(same.confidence * BELOW)


@pytest.mark.parametrize("clean, slipped, name", [
    ("Ticket No: 104857", "Ticket No: 1O4857", "ticket_number"), ("Ticket No: 104857", "Ticket No: l04857",
                                                                  "ticket_number"),
    ("Gross: 75,340 lb", "Gross: 7S,340 lb", "gross_lb"), ("Gross: 78,340 lb", "Gross: 7B,340 lb", "gross_lb"),
    ("Date: 03/14/2026", "Date: O3/l4/2O26", "date"), ("Time: 10:30", "Time: 1O:3O", "time"),
    ("Net Tons: 20.61", "Net Tons: 2O.6l", "net_tons"),
])
def test_confidence_drops_for_a_value_repaired_from_ocr_confusions(clean, slipped, name) -> None:
    good, repaired = scanned(clean)[name], scanned(slipped)[name]
    assert good.value == repaired.value and repaired.confidence < good.confidence


# -------------------------------------------------------------- template
def test_weak_labels_and_date_order_are_checked_in_the_template(tmp_path) -> None:
    path = tmp_path / f"t{time.perf_counter_ns()}.toml"
    path.write_text('[[field]]\nname = "a"\nweak_labels = ["ticket"]\n[[field]]\nname = "b"\nlabels = ["Ticket"]\n')
    with pytest.raises(ConfigError, match="belongs to both"):
        load_template(str(path))
    path.write_text('date_order = "DYM"\n[[field]]\nname = "a"\nlabels = ["a"]\n')
    with pytest.raises(ConfigError, match="date_order must be one of MDY, DMY, YMD"):
        load_template(str(path))
    path.write_text('[[field]]\nname = "a"\nlabels = ["a"]\ndate_order = "DMY"\n')
    with pytest.raises(ConfigError, match="date_order is for date fields"):
        load_template(str(path))
    specs = {spec.name: spec for spec in TICKET.fields}
    assert "ticket" in specs["ticket_number"].weak_labels and "ticket" not in specs["ticket_number"].labels
    assert specs["date"].date_order == "MDY"
