"""Ticket validation alone: required fields, arithmetic, dates, confidence, duplicates."""

from __future__ import annotations

from datetime import date

from engine.config import EngineConfig
from engine.records import Field, PageResult, PageTask
from engine.seen import SeenValues
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
