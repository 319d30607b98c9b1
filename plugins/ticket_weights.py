"""A ticket's weights checked against each other (see :mod:`plugins.ticket_validate`).

The weights are the fields with the roles ``gross``, ``tare``, ``net`` and ``net_tons`` (see
:mod:`plugins.template_loader`), whatever their names, each in its field's unit; every comparison
is made in one unit, converted with :func:`plugins.template_numbers.convert_weight`, and allows for
the rounding of each value as extraction gives it (whole pounds and kilograms, hundredths of a ton
or tonne) besides the 1 % of the rules:

- net = gross - tare (``net_mismatch``; the net tons stand in for a net that was not read);
- net tons = the net in tons (``tons_mismatch``);
- no weight below zero (``negative_weight``), gross not below tare (``negative_net``), and not
  every weight zero (``zero_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.records import Field, Issue
from plugins.template_loader import Template
from plugins.template_numbers import convert_weight

TOLERANCE = 0.01  # 1 %
WEIGHT_ROLES = ("gross", "tare", "net", "net_tons")
HALF_STEP = {"lb": 0.5, "kg": 0.5, "t": 0.005, "ton": 0.005}  # half the last digit extraction keeps
UNIT_NAMES = {"lb": "lb", "kg": "kg", "t": "t", "ton": "tons"}

__all__ = ["TOLERANCE", "WEIGHT_ROLES", "Weight", "weight_issues", "weights_of"]


@dataclass(frozen=True)
class Weight:
    """A weight read on a page: its field, its value and its field's unit."""

    name: str
    value: float
    unit: str

    def in_unit(self, unit: str) -> float:
        return convert_weight(self.value, self.unit, unit)

    def rounding(self, unit: str) -> float:
        """How far the value may be off by its rounding alone, in ``unit``."""
        return convert_weight(HALF_STEP.get(self.unit, 0.0), self.unit, unit)

    def shown(self, unit: str | None = None) -> str:
        """"41,220 lb"; without the unit when it is ``unit`` (the unit of the figure it goes with)."""
        return _figure(self.value) + ("" if unit == self.unit else f" {UNIT_NAMES.get(self.unit, self.unit)}")


def _figure(value: float, unit: str | None = None) -> str:
    """A number with thousands separators and at most two decimals ("41,220", "20.61", "-0.6"); one
    worked out in pounds or kilograms in whole ones, as extraction gives them."""
    if unit in ("lb", "kg"):
        return f"{round(value):,}"
    return f"{round(value, 2):,.2f}".rstrip("0").rstrip(".")


def _number(item: Field | None) -> float | None:
    if item is None or isinstance(item.value, bool):
        return None
    try:
        return float(str(item.value).replace(",", "")) if isinstance(item.value, str) else float(item.value)
    except (TypeError, ValueError):
        return None


def weights_of(fields: dict[str, Field], template: Template) -> dict[str, Weight]:
    """The page's weights by role, those whose value is a number."""
    found = {}
    for role in WEIGHT_ROLES:
        spec = template.role(role)
        value = _number(fields.get(spec.name)) if spec is not None else None
        if spec is not None and value is not None:
            found[role] = Weight(spec.name, value, spec.unit)
    return found


def _net_issues(weights: dict[str, Weight]) -> list[Issue]:
    issues = []
    gross, tare, net, tons = (weights.get(role) for role in WEIGHT_ROLES)
    the_net = net or tons
    if gross and tare and the_net:
        unit = the_net.unit
        expected = gross.in_unit(unit) - tare.in_unit(unit)
        slack = TOLERANCE * max(abs(expected), abs(the_net.value)) + sum(
            weight.rounding(unit) for weight in (gross, tare, the_net))
        if abs(expected - the_net.value) > slack:
            issues.append(Issue("net_mismatch", f"net {the_net.shown()} is not gross {gross.shown(unit)} - tare "
                                                f"{tare.shown(unit)} = {_figure(expected, unit)} {UNIT_NAMES[unit]}",
                                field=the_net.name))
    if net and tons:
        converted = net.in_unit(tons.unit)
        slack = TOLERANCE * abs(tons.value) + tons.rounding(tons.unit) + net.rounding(tons.unit)
        if abs(converted - tons.value) > slack:
            issues.append(Issue("tons_mismatch", f"net {tons.shown()} is not net {net.shown()} = {_figure(converted)} "
                                                 f"{UNIT_NAMES[tons.unit]}", field=tons.name))
    return issues


def _sign_issues(weights: dict[str, Weight]) -> list[Issue]:
    issues = [Issue("negative_weight", f"{weight.name} is negative ({_figure(weight.value)} as read)",
                    field=weight.name) for weight in weights.values() if weight.value < 0]
    gross, tare = weights.get("gross"), weights.get("tare")
    if gross and tare:
        unit = gross.unit
        slack = 0.0 if tare.unit == unit else tare.rounding(unit) + gross.rounding(unit)
        if gross.value < tare.in_unit(unit) - slack:
            issues.append(Issue("negative_net", f"gross {gross.shown()} is less than tare {tare.shown()} (net would "
                                                f"be {_figure(gross.value - tare.in_unit(unit), unit)} {UNIT_NAMES[unit]})",
                                field=gross.name))
    if weights and all(weight.value == 0 for weight in weights.values()):
        shown = ", ".join(f"{weight.name} {_figure(weight.value)}" for weight in weights.values())
        issues.append(Issue("zero_weight", f"every weight is zero ({shown})", field=next(iter(weights.values())).name))
    return issues


def weight_issues(fields: dict[str, Field], template: Template) -> list[Issue]:
    """Every rule on the page's weights (the fields of the template's weight roles)."""
    weights = weights_of(fields, template)
    return _net_issues(weights) + _sign_issues(weights)
