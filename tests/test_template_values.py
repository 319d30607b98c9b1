"""Value parsing as scanned weigh tickets print values and OCR reads them: date orders and
two-digit years, times without a colon, numbers split by spaces, money with sign and cents, units
as OCR spells them. A value that could be read two ways comes back with low confidence."""

from __future__ import annotations

import json
import time
from datetime import date

import pytest

from engine.records import OcrResult
from plugins.template_extract import extract_fields, load_template
from plugins.template_values import parse_date, parse_value

TICKET = load_template("truck_ticket")
SURE = 0.9  # at or above: a value the review queue does not see
REVIEW = 0.6  # below: the default --review-below sends the page to review


def read(text: str) -> dict:
    """Fields of the bundled template in a text layer (every word confidence 1.0)."""
    return {f.name: f for f in extract_fields(OcrResult(text, tuple(text.splitlines())), TICKET)}


def template(tmp_path, body: str):
    path = tmp_path / f"t{time.perf_counter_ns()}.toml"
    path.write_text(body)
    return load_template(str(path))


# -------------------------------------------------------------------- dates
@pytest.mark.parametrize("line, value", [
    ("Date: 05-JAN-25", "2025-01-05"), ("Date: 5 Jan 25", "2025-01-05"), ("Date: Jan 5, 25", "2025-01-05"),
    ("Date: 12/31/99", "1999-12-31"), ("Date: 03/04/25", "2025-03-04"), ("Date: 13.01.2025", "2025-01-13"),
])
def test_dates_with_two_digit_years_and_month_names(line, value) -> None:
    found = read(line)["date"]
    assert found.value == value and found.confidence == 1.0


def test_two_digit_years_go_to_the_closest_century() -> None:
    assert parse_date("12/31/99", today=date(2026, 5, 1))[0] == "1999-12-31"
    assert parse_date("12/31/30", today=date(2026, 5, 1))[0] == "2030-12-31"
    assert parse_date("12/31/30", today=date(2090, 5, 1))[0] == "2130-12-31"
    assert parse_date("12/31/76", today=date(2026, 5, 1))[0] == "1976-12-31"  # 50 years either way: the past


def test_a_dotted_date_is_day_first_and_a_guess_on_a_month_first_ticket() -> None:
    found = read("Date: 05.01.2025")["date"]
    assert found.value == "2025-01-05" and found.confidence < REVIEW
    assert read("Date: 05/01/2025")["date"].value == "2025-05-01"  # slashes: the template's MDY


@pytest.mark.parametrize("order, value", [("MDY", "2025-03-04"), ("DMY", "2025-04-03"), ("YMD", "2003-04-25")])
def test_the_template_date_order_reads_ambiguous_dates(tmp_path, order, value) -> None:
    custom = template(tmp_path, f'date_order = "{order}"\n[[field]]\nname = "d"\nlabels = ["date"]\ntype = "date"\n')
    found = {f.name: f for f in extract_fields(OcrResult("Date: 03/04/25"), custom)}
    assert found["d"].value == value and found["d"].confidence == 1.0
    # a day over 12 reads one way only, whatever the order
    found = {f.name: f for f in extract_fields(OcrResult("Date: 14/03/2025"), custom)}
    assert found["d"].value == "2025-03-14"
    found = {f.name: f for f in extract_fields(OcrResult("Date: 03/14/2025"), custom)}
    assert found["d"].value == "2025-03-14"


def test_a_field_may_have_its_own_date_order(tmp_path) -> None:
    custom = template(tmp_path, '[[field]]\nname = "d"\nlabels = ["date"]\ntype = "date"\ndate_order = "DMY"\n'
                                '[[field]]\nname = "e"\nlabels = ["due"]\ntype = "date"\n')
    found = {f.name: f.value for f in extract_fields(OcrResult("Date: 03/04/2025\nDue: 03/04/2025"), custom)}
    assert found == {"d": "2025-04-03", "e": "2025-03-04"}


# -------------------------------------------------------------------- times
@pytest.mark.parametrize("line, value", [
    ("Time: 1405", "14:05"), ("Time: 0745", "07:45"), ("Time: 2 PM", "14:00"), ("Time: 745 am", "07:45"),
    ("Time: 12 am", "00:00"), ("Time: 1405 hrs", "14:05"), ("Time In: 0745 Time Out: 0912", "07:45"),
])
def test_times_without_a_colon(line, value) -> None:
    assert read(line)["time"].value == value


@pytest.mark.parametrize("line, value", [
    ("Time: 7:45p", "19:45"), ("Time: 7:45 p", "19:45"), ("Time: 7:45 P.", "19:45"), ("Time: 7:45a", "07:45"),
    ("Time: 12:10 a", "00:10"), ("Time: 12:10p", "12:10"), ("Time: 2p", "14:00"), ("Time: 745a", "07:45"),
    ("Time: 14:05 A", "14:05"), ("Time: 13:05p", "13:05"),  # after a 24-hour time: some other letter
    ("Time: 7:45 P-12", "07:45"), ("Time: 7:45 Plant 2", "07:45"),  # a letter of what follows
])
def test_a_single_letter_meridiem(line, value) -> None:
    found = read(line)["time"]
    assert found.value == value and found.confidence == 1.0


def test_the_raw_text_of_a_time_has_its_meridiem_and_nothing_else() -> None:
    assert read("Time: 7:45 p")["time"].raw == "7:45 p"
    assert read("Time: 14:05 A")["time"].raw == "14:05"


@pytest.mark.parametrize("line", ["Time: 13 PM", "Time: 2575", "Time: 14057", "Time: 2p-3"])
def test_digits_that_are_no_time(line) -> None:
    assert "time" not in read(line)


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize("line, value", [
    ("Gross: 72 340 lb", 72340), ("Gross: 72, 340 lb", 72340), ("Gross: 1 072 340 lb", 1072340),
])
def test_thousands_grouped_by_a_space_are_one_number_read_with_less_confidence(line, value) -> None:
    found = read(line)["gross_lb"]
    assert found.value == value and REVIEW <= found.confidence < 1.0


@pytest.mark.parametrize("line, name, value", [
    ("Ticket No: 5588 12", "ticket_number", "558812"), ("Gross: 72 34 lb", "gross_lb", 7234),
])
def test_digits_split_by_a_space_without_a_grouping_are_a_guess(line, name, value) -> None:
    found = read(line)[name]
    assert found.value == value and found.confidence < REVIEW


def test_two_values_in_a_row_are_not_joined() -> None:
    assert read("Gross: 72,340 31,120")["gross_lb"].value == 72340


def test_a_weight_pattern_picks_the_number_and_the_unit_after_it_still_counts(tmp_path) -> None:
    assert parse_value("weight", "33,729 kg", "[0-9][0-9,]*", "lb")[0] == 74360
    custom = template(tmp_path, '[[field]]\nname = "w"\nlabels = ["weight"]\ntype = "weight"\n'
                                "pattern = '[0-9][0-9,]*'\n")
    assert [f.value for f in extract_fields(OcrResult("Weight: 33,729 kg"), custom)] == [74360]
    assert [f.value for f in extract_fields(OcrResult("Weight: 33,729"), custom)] == [33729]


COUNT = '[[field]]\nname = "count"\nlabels = ["count"]\ntype = "number"\n'


@pytest.mark.parametrize("line, value, raw", [
    ("Count: -1,200.5", -1200.5, "-1,200.5"), ("Count: (12)", -12, "(12)"), ("Count: ( 12 )", -12, "( 12 )"),
    ("Count: \u22125", -5, "\u22125"), ("Count: 1,200.5", 1200.5, "1,200.5"), ("Count: -0", 0, "-0"),
    ("Count - 12", 12, "12"),  # a dash set apart is punctuation
    ("Count: J-7741", 7741, "7741"), ("Count: 12 (3)", 12, "12"), ("Count: (12 loads)", 12, "12"),
])
def test_a_number_keeps_its_sign(tmp_path, line, value, raw) -> None:
    [found] = extract_fields(OcrResult(line), template(tmp_path, COUNT))
    assert (found.value, found.raw, found.confidence) == (value, raw, 1.0)
    assert str(found.value) == str(value)  # -0 is 0


# -------------------------------------------------------------------- money
MONEY = '[[field]]\nname = "price"\nlabels = ["price"]\ntype = "money"\n'


@pytest.mark.parametrize("line, value, sure", [
    ("Price: S45.00", "45.00", False), ("Price: -$12.50", "-12.50", True), ("Price: ($12.50)", "-12.50", True),
    ("Price: $ -3.50", "-3.50", True), ("Price: $1,234.5", "1234.50", True), ("Price: USD 99", "99.00", True),
    ("Price: 1.234,50", "1234.50", True),
])
def test_money_keeps_its_sign_and_two_decimals(tmp_path, line, value, sure) -> None:
    [found] = extract_fields(OcrResult(line), template(tmp_path, MONEY))
    assert found.value == value
    assert (found.confidence == 1.0) is sure  # "S" for "$" is a repair


def test_money_shows_two_decimals_in_json_and_csv_cells() -> None:
    from engine.sinks import csv_cell, typed_value

    value = parse_value("money", "$1,234.5")[0]
    assert json.dumps({"price": value}) == '{"price": "1234.50"}'
    assert csv_cell(value) == "1234.50" and csv_cell(parse_value("money", "-$12.5")[0]) == "-12.50"
    assert typed_value("money", value) == 1234.5  # a number in a spreadsheet


# -------------------------------------------------------------------- units
@pytest.mark.parametrize("written, pounds", [
    ("72,340 Ib", 72340), ("72,340 Ibs", 72340), ("72,340 Lbs", 72340), ("72,340 LB.", 72340),
    ("72,340 1bs", 72340), ("72,340 1b", 72340), ("72,340Ib", 72340), ("32,812 kgs", 72338),
    ("32,812 KG", 72338), ("32.812 tonnes", 72338), ("32.812 T", 72338), ("32.81 MT", 72333),
    ("36.17 tons", 72340), ("36.17 TN", 72340), ("36.17 short tons", 72340),
])
def test_units_as_ocr_spells_them_convert_to_the_fields_unit(tmp_path, written, pounds) -> None:
    kilos = template(tmp_path, '[[field]]\nname = "w"\nlabels = ["weight"]\ntype = "weight"\nunit = "kg"\n')
    [found] = extract_fields(OcrResult(f"Weight: {written}"), kilos)  # kg: lb would be the default anyway
    assert abs(found.value - pounds * 0.45359237) <= 1


def test_st_after_a_number_is_short_tons() -> None:
    assert read("Net Tons: 36 ST")["net_tons"].value == 36.0
    assert read("Gross: 36 ST")["gross_lb"].value == 72000
    assert read("Gross: 36 st.")["gross_lb"].raw == "36 st."
    assert read("Gross: 36 Street")["gross_lb"].value == 36  # a word, not the unit
    assert "gross_lb" not in read("Gross: 1ST")  # an ordinal is no number
    assert read("Gross  Tare  Net  Tons\n72,000 lb  36,000 lb  36,000 lb  18 ST")["net_tons"].value == 18.0


def test_short_tons_and_metric_tonnes_stay_distinct() -> None:
    assert read("Net Tons: 20 t")["net_tons"].value == 22.05  # 20 tonnes = 44,092 lb
    assert read("Net Tons: 20 tons")["net_tons"].value == 20.0
    assert read("Net Tons: 20 TN")["net_tons"].value == 20.0
    assert read("Net Tons: 41,220 Ib")["net_tons"].value == 20.61


def test_a_unit_in_the_label_is_the_unit_of_a_bare_number() -> None:
    assert read("Gross (kg): 32,812")["gross_lb"].value == 72338
    assert read("Gross Weight (lbs): 72,340")["gross_lb"].value == 72340
    assert read("Gross (kg): 72,340 lb")["gross_lb"].value == 72340  # the unit written after it wins
