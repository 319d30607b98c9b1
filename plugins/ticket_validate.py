"""Built-in validation of truck and weigh tickets: rules on the extracted fields → issues.

- every required field of the template present (``missing_field``);
- a label found on the page with no readable value (``unreadable_value``, naming what was read),
  a date printed but impossible (``invalid_date``: 02/30/2025), whether the field is required or
  not; these say why a required field is missing instead of ``missing_field``;
- a line that starts like a label OCR could not read, on a page that lacks a field
  (``unreadable_label``: the label of the missing field may be on it);
- most required fields missing on a page OCR read with low confidence (``unreadable_page``: the
  scan may be rotated, or not be a ticket);
- the weights, by the roles of their fields (``gross``, ``tare``, ``net``, ``net_tons``: see
  :mod:`plugins.template_loader`), compared in one unit (:mod:`plugins.ticket_weights`): net =
  gross - tare within 1 % (``net_mismatch``), net tons = the net in tons within 1 %
  (``tons_mismatch``; with the rounding of each value allowed for), no weight below zero
  (``negative_weight``), gross not below tare (``negative_net``: a load cannot weigh less than its
  empty truck), and not every weight zero (``zero_weight``: a scale that did not weigh);
- a plausible date in every date field: not before 1990, not more than a day ahead
  (``implausible_date``);
- no field read with a confidence below ``--review-below`` (``low_confidence``, one per field,
  showing the value read);
- across the run, a ticket number (the field of the ``ticket_id`` role) on more than one page
  (``duplicate_ticket``, on each of those pages, naming the others), checked in the parent.

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
from plugins.template_extract import Template, load_template
from plugins.template_notes import PageNotes, take
from plugins.ticket_weights import weight_issues

EARLIEST = date(1990, 1, 1)
UNREADABLE_PAGE_CONFIDENCE = 60.0  # a page OCR read below this mean confidence (0..100) is hard to read


def blank(value: Any) -> bool:
    """No value: None, or a text of nothing but spaces ("" from a pattern that matched nothing)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _date_issues(fields: dict[str, Field], template: Template, today: date) -> list[Issue]:
    """Each date of the page (the template's date fields, and any field another plugin typed a
    date) not before 1990 and not more than a day ahead."""
    names = dict.fromkeys([*(spec.name for spec in template.dates),
                           *(name for name, item in fields.items() if item.type == "date")])
    latest = today + timedelta(days=1)
    issues = []
    for name in names:
        when = fields.get(name)
        if when is None:
            continue
        try:
            day = date.fromisoformat(str(when.value))
        except ValueError:
            issues.append(Issue("implausible_date", f"{name} {when.value!r} is not a date", field=name))
            continue
        if day < EARLIEST or day > latest:
            issues.append(Issue("implausible_date", f"{name} {day.isoformat()} is before {EARLIEST.year} or after "
                                                    f"{latest.isoformat()}", field=name))
    return issues


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
                 expected: tuple[str, ...] = (), template: Template | None = None) -> list[Issue]:
    """Every rule on one page's fields and ``notes`` (what extraction saw that the fields cannot
    say); ``expected`` names every field of the template, ``today`` defaults to the local date.
    ``template`` says which fields are the weights, the dates and the ticket's number (by their
    roles and types; the bundled truck_ticket by default). A field without a value (None, or text
    of nothing but spaces) counts as missing."""
    template = template or load_template("truck_ticket")
    fields = {name: item for name, item in fields.items() if not blank(item.value)}
    issues = _noted(fields, required, notes or PageNotes(), expected)
    issues += weight_issues(fields, template)
    issues += _date_issues(fields, template, today or date.today())
    for name, item in fields.items():
        if item.confidence < review_below:
            issues.append(Issue("low_confidence", f"{name} {_shown(item)} read with confidence "
                                                  f"{item.confidence:.2f} (below {review_below:g})", field=name))
    return issues


@hookimpl
def pagemill_validate(page: PageTask, fields: dict[str, Field], config: Any) -> list[Issue]:
    template = load_template(config.template)
    return check_fields(fields, template.required, config.review_below, notes=take(page),
                        expected=tuple(spec.name for spec in template.fields), template=template)


@hookimpl
def pagemill_cross_check(result: PageResult, seen: Any, config: Any) -> list[Issue]:
    """A ticket number (the field of the template's ``ticket_id`` role) on more than one page:
    every page that carries it is flagged, each naming the others, whichever of them finished
    first (a person decides which one is the real ticket)."""
    spec = load_template(config.template).role("ticket_id")
    ticket = result.fields.get(spec.name) if spec is not None else None
    if spec is None or ticket is None or blank(ticket.value):
        return []
    number = str(ticket.value).strip()
    seen.first_seen(spec.name, number, result.where(), result.key)
    places = seen.places(spec.name, number)
    if len(places) < 2:
        return []
    for place in places:
        if place.key is not None and place.key != result.key:
            seen.amend(place.key, duplicate_issue(number, place.where, places, field=spec.name))
    return [duplicate_issue(number, result.where(), places, field=spec.name)]


def duplicate_issue(number: str, where: str, places: list[Any], shown: int = 5,
                    field: str = "ticket_number") -> Issue:
    """The issue of the page at ``where``: the other pages with the same number, in a stable order."""
    others = sorted((place.where for place in places if place.where != where), key=_natural)
    named = ", ".join(others[:shown]) + (f" and {len(others) - shown} more" if len(others) > shown else "")
    return Issue("duplicate_ticket", f"ticket number {number} is also on {named}", field=field)


def _natural(where: str) -> list[Any]:
    """Sort key that puts "page 2" before "page 10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", where)]
