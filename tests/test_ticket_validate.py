"""Ticket validation alone: required fields, arithmetic, dates, confidence, duplicates."""

from __future__ import annotations

from datetime import date

from engine.config import EngineConfig
from engine.records import Field, OcrResult, PageResult, PageTask
from engine.seen import SeenValues
from plugins.template_notes import PageNotes, Unreadable
from plugins.template_extract import pagemill_extract
from plugins.template_loader import load_template
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


# ------------------------------------------------------------ roles and units
METRIC = """
[[field]]
name = "docket"
labels = ["docket no"]
type = "id"
role = "ticket_id"
[[field]]
name = "day"
labels = ["day"]
type = "date"
[[field]]
name = "gross_kg"
labels = ["gross"]
type = "weight"
unit = "kg"
role = "gross"
[[field]]
name = "tare_kg"
labels = ["tare"]
type = "weight"
unit = "kg"
role = "tare"
[[field]]
name = "net_kg"
labels = ["net"]
type = "weight"
unit = "kg"
role = "net"
[[field]]
name = "net_t"
labels = ["tonnes"]
type = "weight"
unit = "t"
role = "net_tons"
"""


def metric_template(tmp_path, body: str = METRIC) -> str:
    path = tmp_path / "metric.toml"
    path.write_text(body)
    return str(path)


def validated(text: str, template: str) -> list:
    config = EngineConfig(template=template)
    found = {f.name: f for f in pagemill_extract(PAGE, OcrResult(text, tuple(text.splitlines())), config)}
    return pagemill_validate(PAGE, found, config)


def test_a_metric_template_gets_the_net_check_by_its_roles(tmp_path) -> None:
    template = metric_template(tmp_path)
    issues = validated("Gross: 30,000 kg\nTare: 10,000 kg\nNet: 5,000 kg", template)
    assert [(i.code, i.field, i.message) for i in issues] == [
        ("net_mismatch", "net_kg", "net 5,000 kg is not gross 30,000 - tare 10,000 = 20,000 kg")]
    assert validated("Gross: 30,000 kg\nTare: 10,000 kg\nNet: 20,000 kg\nTonnes: 20.00", template) == []
    [tonnes] = validated("Gross: 30,000 kg\nTare: 10,000 kg\nNet: 20,000 kg\nTonnes: 22.05", template)
    assert (tonnes.code, tonnes.field, tonnes.message) == ("tons_mismatch", "net_t", "net 22.05 t is not net 20,000 kg "
                                                                                    "= 20 t")


def test_weights_in_different_units_are_compared_in_one(tmp_path) -> None:
    def field(name: str, role: str, unit: str) -> str:
        return f'[[field]]\nname = "{name}"\nlabels = ["{name}"]\ntype = "weight"\nunit = "{unit}"\nrole = "{role}"\n'

    mixed = tmp_path / "mixed.toml"
    mixed.write_text(field("loaded", "gross", "kg") + field("empty", "tare", "lb") + field("load", "net", "lb")
                          + field("tons", "net_tons", "ton"))
    template = load_template(str(mixed))
    ok = {"loaded": Field("loaded", 30000, 0.95), "empty": Field("empty", 22046, 0.95),
          "load": Field("load", 44093, 0.95), "tons": Field("tons", 22.05, 0.95)}  # 30,000 kg = 66,139 lb
    assert check_fields(ok, (), 0.6, today=date(2026, 6, 1), template=template) == []
    off = dict(ok, load=Field("load", 40000, 0.95), tons=Field("tons", 20.0, 0.95))
    [issue] = check_fields(off, (), 0.6, today=date(2026, 6, 1), template=template)
    assert issue.code == "net_mismatch" and issue.field == "load"
    assert issue.message == "net 40,000 lb is not gross 30,000 kg - tare 22,046 = 44,093 lb"
    swapped = {"loaded": Field("loaded", 10000, 0.95), "empty": Field("empty", 44092, 0.95)}  # 10 t < 20 t
    [negative] = check_fields(swapped, (), 0.6, today=date(2026, 6, 1), template=template)
    assert negative.code == "negative_net"
    assert negative.message == "gross 10,000 kg is less than tare 44,092 lb (net would be -10,000 kg)"
    same = {"loaded": Field("loaded", 10000, 0.95), "empty": Field("empty", 22046, 0.95)}  # equal, but for rounding
    assert check_fields(same, (), 0.6, today=date(2026, 6, 1), template=template) == []


def test_net_tons_stand_in_for_a_net_not_read() -> None:
    partial = {k: v for k, v in GOOD.items() if k != "net_lb"}
    assert check_fields(fields(**partial), (), 0.6, today=date(2026, 6, 1)) == []
    [issue] = check_fields(fields(**dict(partial, net_tons=25.0)), (), 0.6, today=date(2026, 6, 1))
    assert (issue.code, issue.field) == ("net_mismatch", "net_tons")
    assert issue.message == "net 25 tons is not gross 72,340 lb - tare 31,120 lb = 20.61 tons"


def test_weights_without_roles_are_not_checked(tmp_path) -> None:
    body = METRIC.replace('role = "gross"\n', "").replace('role = "tare"\n', "").replace('role = "net"\n', "")
    assert validated("Gross: 30,000 kg\nTare: 10,000 kg\nNet: 5,000 kg", metric_template(tmp_path, body)) == []


def test_every_date_field_is_checked(tmp_path) -> None:
    template = load_template(metric_template(tmp_path, METRIC + '[[field]]\nname = "out"\nlabels = ["out"]\n'
                                                                'type = "date"\n'))
    page = {"day": Field("day", "1985-01-01", 0.95, type="date"), "out": Field("out", "2026-06-03", 0.95, type="date"),
            "seen": Field("seen", "1970-01-01", 0.95, type="date")}  # a date another plugin added
    issues = check_fields(page, (), 0.6, today=date(2026, 6, 1), template=template)
    assert [(i.code, i.field) for i in issues] == [("implausible_date", "day"), ("implausible_date", "out"),
                                                   ("implausible_date", "seen")]
    assert issues[1].message == "out 2026-06-03 is before 1990 or after 2026-06-02"


def test_the_duplicate_check_follows_the_ticket_id_role(tmp_path) -> None:
    config = EngineConfig(template=metric_template(tmp_path))
    seen = SeenValues()
    pages = [PageResult(f"{n}.pdf", str(n) * 64, 1, 1, "ok", fields={"docket": Field("docket", "D-77", 0.95)})
             for n in (1, 2)]
    assert pagemill_cross_check(pages[0], seen, config) == []
    [issue] = pagemill_cross_check(pages[1], seen, config)
    assert (issue.code, issue.field, issue.message) == ("duplicate_ticket", "docket",
                                                        "ticket number D-77 is also on 1.pdf page 1")
    no_role = EngineConfig(template=metric_template(tmp_path, METRIC.replace('role = "ticket_id"\n', "")))
    seen = SeenValues()
    assert [pagemill_cross_check(page, seen, no_role) for page in pages] == [[], []]
