"""The net weight printed again in tons right after the net ("Net: 41,340 lb (20.67 tons)", "Net
41,340 lb 20.67 Tons"), read as the template's net tons (see :mod:`plugins.template_extract`).

A ticket often prints the net twice, in pounds or kilograms and again in tons, on one line under
one label; the tons have no label of their own there ("Tons" after a number is its unit). They
are read as the field of the ``net_tons`` role when all of these hold, so that no other number is
taken for them:

- the value is the one of the field of the ``net`` role, and its unit is known: written after it,
  or named in its label;
- right after that value (past spaces, a bracket, a slash, "=" or "~") stands a number with a
  unit written after it, and that unit is the net tons' own (``ton`` for short tons, ``t`` for
  tonnes: "20.67 tons" is never read as tonnes), not the net's;
- the net tons were found nowhere else on the page, by a label of their own.

A weight restated after gross or tare is never taken (it is not the net), nor one with words
between it and the net, nor a bare number. The net tons so read are checked against the net in
validation like any (``tons_mismatch``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plugins.template_loader import FieldSpec, Template
from plugins.template_numbers import leading_weight

RESTATED = 0.95  # read without a label of its own: a little less certain than the net it follows
_LEAD = re.compile(r"[\s(\[/=~]*")  # what may stand between the net and its restatement

__all__ = ["RESTATED", "Restated", "restated_after", "restatements"]


@dataclass(frozen=True)
class Restated:
    """The net tons found after the net: where in the text (offsets), the value, the text it was
    read from and the quality of that read."""

    start: int
    end: int
    value: float
    raw: str
    quality: float


def restatements(template: Template) -> dict[str, FieldSpec]:
    """The field whose value may be followed by another's, by name: the net, followed by the net tons."""
    net, tons = template.role("net"), template.role("net_tons")
    return {net.name: tons} if net is not None and tons is not None else {}


def restated_after(text: str, stop: int, net_unit: str | None, target: FieldSpec) -> Restated | None:
    """The ``target`` weight right after the net's value in ``text`` (which ends at ``stop``), when
    the net's unit ``net_unit`` is known and differs from the one written after it."""
    lead = _LEAD.match(text, stop)
    start = lead.end() if lead else stop
    found = leading_weight(text[start:])
    if net_unit is None or found is None:
        return None
    number, unit, raw, quality = found
    if unit != target.unit or unit == net_unit:
        return None
    end = start
    for token in raw.split():  # the raw text may have a space put in ("20.67tons")
        end = text.index(token, end) + len(token)
    return Restated(start, end, round(number, 2), raw, quality)
