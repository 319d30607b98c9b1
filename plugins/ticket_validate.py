"""Built-in validation of truck and weigh tickets: rules on the extracted fields → issues.

- every required field of the template present (``missing_field``);
- a label found on the page with no readable value (``unreadable_value``, naming what was read),
  a date printed but impossible (``invalid_date``: 02/30/2025), whether the field is required or
  not; these say why a required field is missing instead of ``missing_field``;
- a line that starts like a label OCR could not read, on a page that lacks a field
  (``unreadable_label``: the label of the missing field may be on it);
- most required fields missing on a page OCR read with low confidence (``unreadable_page``: the
  scan may be rotated, or not be a ticket);
- net = gross - tare within 1 % (``net_mismatch``), and net tons = net lb / 2000 within 1 %
  (``tons_mismatch``; half a hundredth more for the rounding of a printed ton);
- no weight below zero (``negative_weight``), gross not below tare (``negative_net``: a load
  cannot weigh less than its empty truck), and not every weight zero (``zero_weight``: a scale
  that did not weigh);
- a plausible date: not before 1990, not more than a day ahead (``implausible_date``);
- no field read with a confidence below ``--review-below`` (``low_confidence``, one per field,
  showing the value read);
- across the run, a ticket number on more than one page (``duplicate_ticket``, on each of those
  pages, naming the others), checked in the parent.

What the fields cannot say (the labels without values, the page's OCR confidence) comes from
extraction as the page's notes (:mod:`plugins.template_notes`). Messages are plain ASCII, so that
every spreadsheet shows them as written. Every issue sends its page to the review queue.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from engine import hookimpl
from engine.records import Field, Issue, PageResult, PageTask
from plugins.template_extract import load_template
from plugins.template_notes import PageNotes, take

EARLIEST = date(1990, 1, 1)
TOLERANCE = 0.01  # 1 %
TON_ROUNDING = 0.005  # a ton printed with two decimals
WEIGHTS = ("gross_lb", "tare_lb", "net_lb", "net_tons")
UNREADABLE_PAGE_CONFIDENCE = 60.0  # a page OCR read below this mean confidence (0..100) is hard to read


def blank(value: Any) -> bool:
    """No value: None, or a text of nothing but spaces ("" from a pattern that matched nothing)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _number(fields: dict[str, Field], name: str) -> float | None:
    item = fields.get(name)
    if item is None or isinstance(item.value, bool):
        return None
    try:
        return float(str(item.value).replace(",", "")) if isinstance(item.value, str) else float(item.value)
    except (TypeError, ValueError):
        return None


def _arithmetic(fields: dict[str, Field]) -> list[Issue]:
    issues = []
    gross, tare, net = (_number(fields, name) for name in ("gross_lb", "tare_lb", "net_lb"))
    if gross is not None and tare is not None and net is not None:
        expected = gross - tare
        if abs(expected - net) > TOLERANCE * max(abs(expected), abs(net), 1.0):
            issues.append(Issue("net_mismatch", f"net {net:,g} lb is not gross {gross:,g} - tare {tare:,g} = "
                                                f"{expected:,g} lb", field="net_lb"))
    tons = _number(fields, "net_tons")
    if tons is not None and net is not None and abs(net / 2000 - tons) > TOLERANCE * abs(tons) + TON_ROUNDING:
        issues.append(Issue("tons_mismatch", f"net tons {tons:g} is not net {net:,g} lb / 2000 = {net / 2000:.2f}",
                            field="net_tons"))
    return issues


def _weights(fields: dict[str, Field]) -> list[Issue]:
    issues = [Issue("negative_weight", f"{name} is negative ({value:,g} as read)", field=name)
              for name, value in ((name, _number(fields, name)) for name in WEIGHTS) if value is not None and value < 0]
    gross, tare = _number(fields, "gross_lb"), _number(fields, "tare_lb")
    if gross is not None and tare is not None and gross < tare:
        issues.append(Issue("negative_net", f"gross {gross:,g} lb is less than tare {tare:,g} lb "
                                            f"(net would be {gross - tare:,g} lb)", field="gross_lb"))
    weights = {name: _number(fields, name) for name in WEIGHTS}
    present = {name: value for name, value in weights.items() if value is not None}
    if present and all(value == 0 for value in present.values()):
        shown = ", ".join(f"{name} {value:g}" for name, value in present.items())
        issues.append(Issue("zero_weight", f"every weight is zero ({shown})", field=next(iter(present))))
    return issues


def _date_issue(fields: dict[str, Field], today: date) -> Issue | None:
    when = fields.get("date")
    if when is None:
        return None
    try:
        day = date.fromisoformat(str(when.value))
    except ValueError:
        return Issue("implausible_date", f"date {when.value!r} is not a date", field="date")
    latest = today + timedelta(days=1)
    if day < EARLIEST or day > latest:
        return Issue("implausible_date", f"date {day.isoformat()} is before {EARLIEST.year} or after "
                                         f"{latest.isoformat()}", field="date")
    return None


def _shown(item: Field) -> str:
    """The value read, and the text it was read from when that is written otherwise ("14,823 kg")."""
    value = item.value
    shown = f"'{value}'" if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
    raw = " ".join(str(item.raw).split()).strip(" :")
    return shown if not raw or raw == str(value) else f"{shown} (from '{raw[:40]}')"


def _noted(fields: dict[str, Field], required: tuple[str, ...], notes: PageNotes,
           expected: tuple[str, ...]) -> list[Issue]:
    """Missing fields, said with what extraction saw of them, and the page's readability."""
    issues = []
    unreadable = {note.field: note for note in notes.unreadable if note.field not in fields}
    for note in unreadable.values():
        if note.impossible_date:
            issues.append(Issue("invalid_date", f"{note.field} {note.read} is not a valid date", field=note.field))
        else:
            read = f"read '{note.read}'" if note.read else "nothing read after it"
            issues.append(Issue("unreadable_value", f"{note.field}: label found, value not readable ({read})",
                                field=note.field))
    missing = [name for name in required if name not in fields]
    issues += [Issue("missing_field", f"{name} not found", field=name) for name in missing if name not in unreadable]
    if notes.ocr_confidence is not None and required and len(missing) * 2 > len(required) \
            and notes.ocr_confidence < UNREADABLE_PAGE_CONFIDENCE:
        issues.append(Issue("unreadable_page", f"{len(missing)} of {len(required)} required fields not found and OCR "
                                               f"confidence is {notes.ocr_confidence:.0f}/100: the page may be "
                                               f"rotated or not a ticket"))
        return issues  # a line of it read poorly says nothing more
    absent = [name for name in dict.fromkeys((*expected, *required)) if name not in fields]
    if notes.unlabelled and absent:
        line, names = notes.unlabelled[0], ", ".join(absent)
        issues.append(Issue("unreadable_label", f"line '{line.line[:60]}' starts with a label not recognised (read "
                                                f"with confidence {line.confidence:.2f}); not found: {names}"))
    return issues


def check_fields(fields: dict[str, Field], required: tuple[str, ...], review_below: float,
                 today: date | None = None, notes: PageNotes | None = None,
                 expected: tuple[str, ...] = ()) -> list[Issue]:
    """Every rule on one page's fields and ``notes`` (what extraction saw that the fields cannot
    say); ``expected`` names every field of the template, ``today`` defaults to the local date.
    A field without a value (None, or text of nothing but spaces) counts as missing."""
    fields = {name: item for name, item in fields.items() if not blank(item.value)}
    issues = _noted(fields, required, notes or PageNotes(), expected)
    issues += _arithmetic(fields)
    issues += _weights(fields)
    date_issue = _date_issue(fields, today or date.today())
    if date_issue is not None:
        issues.append(date_issue)
    for name, item in fields.items():
        if item.confidence < review_below:
            issues.append(Issue("low_confidence", f"{name} {_shown(item)} read with confidence "
                                                  f"{item.confidence:.2f} (below {review_below:g})", field=name))
    return issues


@hookimpl
def pagemill_validate(page: PageTask, fields: dict[str, Field], config: Any) -> list[Issue]:
    template = load_template(config.template)
    return check_fields(fields, template.required, config.review_below, notes=take(page),
                        expected=tuple(spec.name for spec in template.fields))


@hookimpl
def pagemill_cross_check(result: PageResult, seen: Any, config: Any) -> list[Issue]:
    """A ticket number on more than one page: every page that carries it is flagged, each naming
    the others, whichever of them finished first (a person decides which one is the real ticket)."""
    ticket = result.fields.get("ticket_number")
    if ticket is None or blank(ticket.value):
        return []
    number = str(ticket.value)
    seen.first_seen("ticket_number", number, result.where(), result.key)
    places = seen.places("ticket_number", number)
    if len(places) < 2:
        return []
    for place in places:
        if place.key is not None and place.key != result.key:
            seen.amend(place.key, duplicate_issue(number, place.where, places))
    return [duplicate_issue(number, result.where(), places)]


def duplicate_issue(number: str, where: str, places: list[Any], shown: int = 5) -> Issue:
    """The issue of the page at ``where``: the other pages with the same number, in a stable order."""
    others = sorted((place.where for place in places if place.where != where), key=_natural)
    named = ", ".join(others[:shown]) + (f" and {len(others) - shown} more" if len(others) > shown else "")
    return Issue("duplicate_ticket", f"ticket number {number} is also on {named}", field="ticket_number")


def _natural(where: str) -> list[Any]:
    """Sort key that puts "page 2" before "page 10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", where)]
