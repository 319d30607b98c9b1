"""Built-in validation of truck and weigh tickets: rules on the extracted fields → issues.

- every required field of the template present (``missing_field``);
- net = gross − tare within 1 % (``net_mismatch``), net tons = net lb / 2000 within 1 %
  (``tons_mismatch``);
- a plausible date: not before 1990, not more than a day ahead (``implausible_date``);
- no field below ``--review-below`` confidence (``low_confidence``);
- across the run, a ticket number seen twice (``duplicate_ticket``), checked in the parent.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from engine import hookimpl
from engine.records import Field, Issue, PageResult, PageTask
from plugins.template_extract import load_template

EARLIEST = date(1990, 1, 1)
TOLERANCE = 0.01


def _number(fields: dict[str, Field], name: str) -> float | None:
    item = fields.get(name)
    if item is None:
        return None
    try:
        return float(item.value)
    except (TypeError, ValueError):
        return None


def check_fields(fields: dict[str, Field], required: tuple[str, ...], review_below: float,
                 today: date | None = None) -> list[Issue]:
    issues = [Issue("missing_field", f"{name} not found", field=name) for name in required if name not in fields]
    gross, tare, net = (_number(fields, n) for n in ("gross_lb", "tare_lb", "net_lb"))
    if None not in (gross, tare, net):
        expected = gross - tare  # type: ignore[operator]
        if abs(expected - net) > TOLERANCE * max(abs(expected), abs(net), 1.0):  # type: ignore[arg-type]
            issues.append(Issue("net_mismatch", f"net {net:g} lb ≠ gross {gross:g} − tare {tare:g} = {expected:g} lb",
                                field="net_lb"))
    tons = _number(fields, "net_tons")
    if tons is not None and net is not None:
        if abs(net / 2000.0 - tons) > TOLERANCE * max(abs(tons), 0.01) + 0.005:
            issues.append(Issue("tons_mismatch", f"net tons {tons:g} ≠ net {net:g} lb / 2000 = {net / 2000:.2f}",
                                field="net_tons"))
    when = fields.get("date")
    if when is not None:
        try:
            day = date.fromisoformat(str(when.value))
        except ValueError:
            day = None
        latest = (today or date.today()) + timedelta(days=1)
        if day is None or not EARLIEST <= day <= latest:
            issues.append(Issue("implausible_date", f"date {when.value} is not plausible", field="date"))
    for name, item in fields.items():
        if item.confidence < review_below:
            issues.append(Issue("low_confidence", f"{name} read with confidence {item.confidence:.2f}", field=name))
    return issues


@hookimpl
def pagemill_validate(page: PageTask, fields: dict[str, Field], config: Any) -> list[Issue]:
    template = load_template(config.template)
    return check_fields(fields, template.required, config.review_below)


@hookimpl
def pagemill_cross_check(result: PageResult, seen: Any, config: Any) -> list[Issue]:
    ticket = result.fields.get("ticket_number")
    if ticket is None or ticket.value in (None, ""):
        return []
    earlier = seen.first_seen("ticket_number", str(ticket.value), result.where())
    if earlier is None:
        return []
    return [Issue("duplicate_ticket", f"ticket number {ticket.value} also on {earlier}", field="ticket_number")]
