"""Ticket validation alone: required fields, arithmetic, dates, confidence, duplicates."""

from __future__ import annotations

from datetime import date

from engine.config import EngineConfig
from engine.records import Field, PageResult, PageTask
from engine.seen import SeenValues
from plugins.template_notes import PageNotes, Unreadable
from plugins.ticket_validate import (
    check_fields,
    pagemill_cross_check,
    pagemill_validate,
)

PAGE = PageTask(document="x.pdf", sha256="0" * 64, index=0, page_count=1)
REQUIRED = ("ticket_number", "date", "gross_lb", "tare_lb", "net_lb")


def fields(**values) -> dict[str, Field]:
    confidence = values.pop("confidence", 0.95)
    return {name: Field(name, value, confidence) for name, value in values.items()}


GOOD = dict(ticket_number="104857", date="2026-03-14", gross_lb=72340, tare_lb=31120, net_lb=41220, net_tons=20.61)


def codes(issues) -> list[str]:
    return sorted(issue.code for issue in issues)


def test_a_good_ticket_has_no_issues() -> None:
    assert check_fields(fields(**GOOD), REQUIRED, 0.6, today=date(2026, 6, 1)) == []


def test_missing_required_fields() -> None:
    partial = {k: v for k, v in GOOD.items() if k not in ("date", "tare_lb")}
    issues = check_fields(fields(**partial), REQUIRED, 0.6, today=date(2026, 6, 1))
    assert codes(issues) == ["missing_field", "missing_field"]
    assert {i.field for i in issues} == {"date", "tare_lb"}


def test_an_empty_value_is_a_missing_field() -> None:
    for empty in ("", "   "):
        issues = check_fields(fields(**dict(GOOD, ticket_number=empty)), REQUIRED, 0.6, today=date(2026, 6, 1))
        assert [(i.code, i.field) for i in issues] == [("missing_field", "ticket_number")]
    seen = SeenValues()
    for n in (1, 2):  # two pages without a number are no duplicates
        page = PageResult(f"{n}.pdf", str(n) * 64, 1, 1, "ok", fields=fields(**dict(GOOD, ticket_number="")))
        assert pagemill_cross_check(page, seen, EngineConfig()) == []


def test_net_must_be_gross_minus_tare_within_one_percent() -> None:
    close = dict(GOOD, net_lb=41220 + 300, net_tons=20.76)  # 0.7 % off
    far = dict(GOOD, net_lb=45000, net_tons=22.5)
    assert check_fields(fields(**close), REQUIRED, 0.6, today=date(2026, 6, 1)) == []
    assert codes(check_fields(fields(**far), REQUIRED, 0.6, today=date(2026, 6, 1))) == ["net_mismatch"]


def test_tons_must_match_net_pounds() -> None:
    issues = check_fields(fields(**dict(GOOD, net_tons=25.0)), REQUIRED, 0.6, today=date(2026, 6, 1))
    assert codes(issues) == ["tons_mismatch"]


def test_implausible_dates() -> None:
    for bad in ("1985-01-01", "2026-06-03", "not a date"):
        issues = check_fields(fields(**dict(GOOD, date=bad)), REQUIRED, 0.6, today=date(2026, 6, 1))
        assert codes(issues) == ["implausible_date"], bad


def test_low_confidence_flags_each_field() -> None:
    issues = check_fields(fields(**GOOD, confidence=0.4), REQUIRED, 0.6, today=date(2026, 6, 1))
    assert codes(issues) == ["low_confidence"] * 6


def test_hook_reads_review_below_and_template() -> None:
    assert pagemill_validate(PAGE, fields(**GOOD, confidence=0.7), EngineConfig(review_below=0.8))
    assert not [i for i in pagemill_validate(PAGE, fields(**GOOD, confidence=0.7), EngineConfig(review_below=0.5))
                if i.code == "low_confidence"]


def test_a_page_checked_twice_is_no_duplicate_of_itself() -> None:
    seen = SeenValues()
    first = PageResult("a.pdf", "1" * 64, 1, 1, "ok", fields=fields(**GOOD))
    assert pagemill_cross_check(first, seen, EngineConfig()) == []
    assert pagemill_cross_check(first, seen, EngineConfig()) == []  # a resumed run checks it again
    assert seen.take_amendments() == []


def test_a_duplicate_ticket_number_flags_every_page_that_carries_it_whatever_the_order() -> None:
    pages = [PageResult(f"{name}.pdf", str(n) * 64, page, page, "ok", fields=fields(**GOOD))
             for n, (name, page) in enumerate([("a", 1), ("b", 3), ("c", 10)], start=1)]
    outcomes = []
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        seen = SeenValues()
        issues = {}
        for index in order:
            found = pagemill_cross_check(pages[index], seen, EngineConfig())
            issues[pages[index].key] = found or issues.get(pages[index].key, [])
            for key, issue in seen.take_amendments():  # what the runner applies to earlier pages
                issues[key] = [issue]
        outcomes.append({key: [(i.code, i.message) for i in found] for key, found in issues.items()})
    assert outcomes[0] == outcomes[1] == outcomes[2]
    final = outcomes[0]
    assert all(codes_and[0][0] == "duplicate_ticket" for codes_and in final.values())
    assert final[pages[0].key][0][1].endswith("is also on b.pdf page 3, c.pdf page 10")
    assert final[pages[2].key][0][1].endswith("is also on a.pdf page 1, b.pdf page 3")


def test_gross_below_tare_is_flagged_with_the_numbers() -> None:
    swapped = dict(GOOD, gross_lb=31120, tare_lb=72340, net_lb=41220)  # net read as printed, unsigned
    issues = check_fields(fields(**swapped), REQUIRED, 0.6, today=date(2026, 6, 1))
    assert "negative_net" in codes(issues)
    [negative] = [i for i in issues if i.code == "negative_net"]
    assert "31,120" in negative.message and "72,340" in negative.message and "-41,220" in negative.message
    even = dict(GOOD, gross_lb=31120, tare_lb=31120, net_lb=0, net_tons=0.0)  # an empty truck weighed twice
    assert "negative_net" not in codes(check_fields(fields(**even), REQUIRED, 0.6, today=date(2026, 6, 1)))


def test_all_zero_weights_are_flagged() -> None:
    zero = dict(GOOD, gross_lb=0, tare_lb=0, net_lb=0, net_tons=0.0)
    issues = check_fields(fields(**zero), REQUIRED, 0.6, today=date(2026, 6, 1))
    assert codes(issues) == ["zero_weight"]
    assert "gross_lb 0" in issues[0].message and "net_tons 0" in issues[0].message
    partial = {k: v for k, v in zero.items() if k not in ("tare_lb", "net_tons")}
    assert codes(check_fields(fields(**partial), ("ticket_number",), 0.6, today=date(2026, 6, 1))) == ["zero_weight"]
    some = dict(GOOD, tare_lb=0, gross_lb=41220)  # a zero tare alone is not every weight zero
    assert "zero_weight" not in codes(check_fields(fields(**some), REQUIRED, 0.6, today=date(2026, 6, 1)))


# ------------------------------------------------------ reasons a person can act on
def test_a_low_confidence_reason_shows_the_value_read() -> None:
    page = {"truck": Field("truck", "R-2282", 0.42, "R-2282"), "net_tons": Field("net_tons", 20.5, 0.3),
            "tare_lb": Field("tare_lb", 32679, 0.26, "14,823 kg")}
    messages = [i.message for i in check_fields(page, (), 0.6, today=date(2026, 6, 1))]
    assert messages == ["truck 'R-2282' read with confidence 0.42 (below 0.6)",
                        "net_tons 20.5 read with confidence 0.30 (below 0.6)",
                        "tare_lb 32679 (from '14,823 kg') read with confidence 0.26 (below 0.6)"]


def test_messages_are_plain_ascii() -> None:
    far = dict(GOOD, net_lb=45000, net_tons=22.5)
    swapped = dict(GOOD, gross_lb=31120, tare_lb=72340)
    issues = [*check_fields(fields(**far), REQUIRED, 0.6, today=date(2026, 6, 1)),
              *check_fields(fields(**swapped), REQUIRED, 0.6, today=date(2026, 6, 1))]
    assert "net 45,000 lb is not gross 72,340 - tare 31,120 = 41,220 lb" in [i.message for i in issues]
    assert all(issue.message.isascii() for issue in issues)


def test_a_negative_weight_is_flagged() -> None:
    issues = check_fields(fields(**dict(GOOD, net_lb=-1200, net_tons=-0.6)), REQUIRED, 0.6, today=date(2026, 6, 1))
    negative = [i for i in issues if i.code == "negative_weight"]
    assert [i.field for i in negative] == ["net_lb", "net_tons"] and "-1,200" in negative[0].message


def test_a_label_without_a_value_says_so_instead_of_not_found() -> None:
    partial = {k: v for k, v in GOOD.items() if k not in ("date", "tare_lb", "net_tons")}
    notes = PageNotes((Unreadable("date", "02/30/2025", impossible_date=True), Unreadable("tare_lb", ""),
                       Unreadable("net_tons", "Lio3"), Unreadable("gross_lb", "7O,2")))
    issues = check_fields(fields(**partial), REQUIRED, 0.6, today=date(2026, 6, 1), notes=notes)
    assert [(i.code, i.field, i.message) for i in issues] == [
        ("invalid_date", "date", "date 02/30/2025 is not a valid date"),
        ("unreadable_value", "tare_lb", "tare_lb: label found, value not readable (nothing read after it)"),
        ("unreadable_value", "net_tons", "net_tons: label found, value not readable (read 'Lio3')"),
    ]  # gross_lb was found after all (by another label): its note says nothing


def test_a_page_ocr_could_hardly_read_may_be_rotated() -> None:
    def hint(confidence, page=None):
        notes = PageNotes(ocr_confidence=confidence)
        issues = check_fields(page or {}, REQUIRED, 0.6, today=date(2026, 6, 1), notes=notes)
        return [i.message for i in issues if i.code == "unreadable_page"]

    [message] = hint(35.0)
    assert message == ("5 of 5 required fields not found and OCR confidence is 35/100: the page may be rotated "
                       "or not a ticket")
    assert hint(90.0) == [] and hint(None) == []  # read well, or a text layer: nothing to suggest
    assert hint(35.0, fields(**{k: GOOD[k] for k in ("ticket_number", "date", "gross_lb")})) == []
