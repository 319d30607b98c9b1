"""Candidate values of a page's fields, read at their labels (see :mod:`plugins.template_extract`).

- A field's value is the text after its label up to the next label on the line; when there is none
  (or it does not parse), the text below the label on the next line, cut to the label's column
  when the next line holds several labels' values (a header row, :mod:`plugins.template_columns`);
  a line OCR could hardly read is tried last. Words at either end of a value that OCR read with
  little confidence and that hold no letter or digit, or are one or two stray letters, are dropped
  (speckles read as words), but for a unit right after a weight's number. Labels joined by "/",
  "&" or "and" ("Date/Time") share the value after them, each field taking its part in turn; words
  between a label and its colon ("Truck/Trailer:", "Gross (kg):") belong to the label, and a unit
  among them, or in the label itself ("Net Tonnes"), is the unit of a weight written without one.
  The net tons printed right after the net are its restatement (:mod:`plugins.template_restated`).
- Where a field is found more than once, the candidates are ranked: a strong label before a weak
  one (a word that also heads pages: "ticket"), a value that fills its place below the label
  before one that is only part of it ("1234 Quarry Road" under "SCALE TICKET"), a value on the
  label's own line before one from below, then reading order. A weak label never takes a value
  that is only part of what follows it. When the best two of a rank disagree, the choice is a
  guess and its confidence drops low enough for review (:func:`best`).
- The confidence (0..1) of a value is the mean OCR confidence of its words, times how cleanly its
  label matched (1.0 as written, 0.9 after folding OCR slips, 0.8 with a wrong letter) and how
  cleanly the value parsed (:mod:`plugins.template_values`), and lower for a value read from the
  line below its label. A weight whose unit OCR was unsure of (or whose unit may have been lost as
  a speckle) is a guess, low enough for review.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from plugins.template_columns import below
from plugins.template_labels import LabelHit
from plugins.template_loader import FieldSpec
from plugins.template_numbers import leading_weight
from plugins.template_restated import RESTATED, Restated, restated_after
from plugins.template_values import AMBIGUOUS, parse_value, unit_in
from plugins.template_words import JUNK_CONFIDENCE, Placed, blank, is_junk, unit_after_number

BELOW = 0.9  # a value read from the line below its label: the layout was guessed
POOR_FIT = 0.8  # a value below its label that is only part of what is written there
LABEL_WORDS = 0.95  # words between a label and its colon ("Truck/Trailer:") make the label less certain
_JOINED = re.compile(r"\s*(?:[/&+]|\band\b)\s*", re.IGNORECASE)  # "Date/Time", "Date & Time"
_TAIL = re.compile(r"([^:\n]{1,24}?):")  # what stands between a label and its colon
_UNIT_TAIL = re.compile(r"[ \t]*[(\[]\s*([A-Za-z#.]{1,12})\s*[)\]]")  # "Net (kg) 16,030": no colon

__all__ = ["BELOW", "Candidate", "LABEL_WORDS", "POOR_FIT", "best", "candidates"]


@dataclass(frozen=True)
class Candidate:
    value: Any
    raw: str
    confidence: float
    same_line: bool
    order: tuple[int, int]  # line, position: reading order
    weak: bool = False  # found by a weak label
    poor_fit: bool = False  # below its label, and only part of what is written there
    stop: int = 0  # where the value's text ends in what was read
    restated: Candidate | None = None  # the net: the net tons printed right after it

    @property
    def rank(self) -> tuple[bool, bool, bool]:
        return self.weak, self.poor_fit, not self.same_line


@dataclass(frozen=True)
class _Reading:
    """How to read one field's value: its label's quality and weakness, the unit its label names."""

    hit: LabelHit
    quality: float
    unit: str | None
    same_line: bool
    order: tuple[int, int]
    shared: bool = False  # the text after the value belongs to the next field ("Date/Time")
    joined: bool = False  # one of labels joined by "/", "&" or "and": its value may well not be printed
    restate_as: FieldSpec | None = None  # the net: the field the weight printed again after it may be

    def noted(self, text: str) -> bool:
        """A label clear enough that its lacking a value is worth a note: neither weak nor one letter
        off, and not one of joined labels with nothing left for it ("Date/Time: 01/05/2025")."""
        return not self.hit.weak and self.hit.match != "fuzzy" and not (self.joined and not text)


def _span_of(raw: str, text: str) -> tuple[int, int]:
    """Where the value's raw text is in ``text`` (token by token when it was respaced)."""
    at = text.find(raw)
    if at >= 0:
        return at, at + len(raw)
    start = end = -1
    for token in raw.split():
        found = text.find(token, max(end, 0))
        if found < 0:
            break
        start, end = (found if start < 0 else start), found + len(token)
    return (start, end) if start >= 0 else (0, len(text))


def _trim(line: str, start: int, end: int, inside: list[Placed], weight: bool) -> tuple[int, int, int | None]:
    """``start``, ``end`` with speckles at either end left out, and for a weight whose unit is in
    doubt, where the value's text would end without it: before a unit OCR was unsure of; at the end
    when a stray letter right after the number was dropped (it may have been the unit)."""
    for p in inside:  # leading speckles
        if re.search(r"[A-Za-z0-9]", line[start:p.start]) or not is_junk(p.word):
            break
        start = p.end
    unsure = None
    for p in reversed(inside):  # trailing speckles
        if re.search(r"[A-Za-z0-9]", line[p.end:end]):
            break
        if weight and unit_after_number(line, start, p):
            unsure = p.start if p.word.confidence < JUNK_CONFIDENCE else unsure
            break
        if not is_junk(p.word):
            break
        if weight and re.search(r"[A-Za-z]", p.word.text) and re.search(r"[0-9]\s*$", line[start:p.start]):
            unsure = -1
        end = p.start
    return start, end, (end if unsure == -1 else unsure)


def _unit_in_doubt(spec: FieldSpec, reading: _Reading, text: str, value: Any, without_unit: str | None) -> bool:
    """A weight whose value depends on a unit OCR was unsure of: read without it, it differs (or
    the unit may have been lost)."""
    if without_unit is None:
        return False
    if without_unit == text:
        return True
    parsed = parse_value(spec.type, without_unit, spec.pattern, spec.unit, spec.date_order, reading.unit)
    return parsed is None or parsed[0] != value


def _read(reading: _Reading, line: str, start: int, end: int, placed: list[Placed],
          tried: dict[str, list[str]]) -> Candidate | None:
    """The field's value in ``line[start:end]``, speckles at either end left out; what was there
    goes to ``tried`` when it gives no value."""
    spec = reading.hit.field
    inside = [p for p in placed if p.start >= start and p.end <= end]
    start, end, unsure_at = _trim(line, start, end, inside, spec.type == "weight")
    text = line[start:end]
    parsed = None
    if re.search(r"[A-Za-z0-9]", text):
        parsed = parse_value(spec.type, text, spec.pattern, spec.unit, spec.date_order, reading.unit)
    if parsed is None:
        read = " ".join(text.split()).strip(" :.-|")
        if reading.noted(read):
            tried.setdefault(spec.name, []).append(read)
        return None
    value, raw, value_quality = parsed
    unsure_unit = _unit_in_doubt(spec, reading, text, value, None if unsure_at is None else line[start:unsure_at])
    at, stop = _span_of(raw, text)
    again = _restated(reading, text, stop, raw)
    after = text[again.end if again else stop:]
    partial = re.search(r"[A-Za-z0-9]", text[:at] + " " + ("" if reading.shared else after)) is not None
    if reading.hit.weak and partial:
        return None  # "SCALE TICKET" over "1234 Quarry Road" is a heading, not a label
    poor_fit = partial and not reading.same_line
    layout = (1.0 if reading.same_line else BELOW) * (POOR_FIT if poor_fit else 1.0)
    quality = reading.quality * layout
    confidence = _ocr_confidence(placed, start, end, raw) * quality * value_quality \
        * (AMBIGUOUS if unsure_unit else 1.0)
    restated = None
    if again is not None:
        restated_confidence = _ocr_confidence(placed, start + again.start, start + again.end, again.raw) * quality \
            * again.quality * RESTATED
        restated = Candidate(again.value, again.raw, round(max(0.0, min(1.0, restated_confidence)), 4),
                              reading.same_line, reading.order, poor_fit=poor_fit, stop=start + again.end)
    return Candidate(value, raw, round(max(0.0, min(1.0, confidence)), 4), reading.same_line, reading.order,
                      reading.hit.weak, poor_fit, start + stop, restated)


def _ocr_confidence(placed: list[Placed], start: int, end: int, raw: str) -> float:
    """The mean OCR confidence (0..1) of the words of ``raw`` among those between ``start`` and
    ``end`` (all of them when none is); 1.0 for a text layer."""
    words = [p.word for p in placed if p.start < end and p.end > start]
    used = [word for word in words if word.text in raw or raw in word.text] or words
    return sum(word.confidence for word in used) / len(used) / 100.0 if used else 1.0


def _restated(reading: _Reading, text: str, stop: int, raw: str) -> Restated | None:
    """The net tons printed right after the net's value (:mod:`plugins.template_restated`)."""
    if reading.restate_as is None:
        return None
    written = leading_weight(raw.lstrip("-\u2212\u2013"))
    return restated_after(text, stop, written[1] if written else reading.unit, reading.restate_as)


def _groups(line: str, hits: list[LabelHit]) -> list[list[int]]:
    """The line's labels as groups: labels joined by "/", "&" or "and" share one value."""
    groups: list[list[int]] = []
    for position, hit in enumerate(hits):
        if groups and _JOINED.fullmatch(line[hits[position - 1].end:hit.start]):
            groups[-1].append(position)
        else:
            groups.append([position])
    return groups


def _label_tail(line: str, start: int, end: int) -> tuple[int, float, str | None]:
    """Words between a label and its colon ("/Trailer", "(kg)"): where the value starts after them,
    what they cost the label's quality, and a unit they name."""
    unit_only = _UNIT_TAIL.match(line, start, end)
    if unit_only is not None and unit_in(unit_only.group(1)):
        return unit_only.end(), 1.0, unit_in(unit_only.group(1))
    tail = _TAIL.match(line, start, end)
    if tail is None or re.search(r"[0-9]", tail.group(1)) or not re.search(r"[A-Za-z]", tail.group(1)) \
            or len(tail.group(1).split()) > 2:
        return start, 1.0, None
    unit = unit_in(tail.group(1))
    return tail.end(), 1.0 if unit else LABEL_WORDS, unit


def _label_unit(line: str, hit: LabelHit) -> str | None:
    """The unit a weight's label names ("Net Tonnes": tonnes), if any."""
    return unit_in(line[hit.start:hit.end]) if hit.field.type == "weight" else None


def _read_in_turn(readings: list[_Reading], text: str, start: int, end: int, placed: list[Placed],
                  wanted: set[str], found: dict[str, list[Candidate]], tried: dict[str, list[str]]) -> list[_Reading]:
    """Each field's value in turn, the next reading after the last value; the readings left unread."""
    unread = []
    for reading in readings:
        candidate = _read(reading, text, start, end, placed, tried)
        if candidate is None:
            unread.append(reading)
            continue
        start = candidate.stop
        if reading.hit.field.name in wanted:
            found.setdefault(reading.hit.field.name, []).append(candidate)
    return unread


def _lines_below(lines: list[str], placed: list[list[Placed]], hits_by_line: list[list[LabelHit]],
                 index: int) -> list[int]:
    """The lines to read a value from below line ``index``: the next one with something to read
    (past up to two speckle lines), then the lines passed over that OCR could hardly read."""
    after = index + 1
    while after < len(lines) and after <= index + 2 and blank(lines[after], placed[after]):
        after += 1
    faint = [n for n in range(index + 1, after) if re.search(r"[A-Za-z0-9]", lines[n])]
    return [n for n in [after, *faint] if n < len(lines) and not hits_by_line[n]]


def candidates(lines: list[str], placed: list[list[Placed]], hits_by_line: list[list[LabelHit]],
                wanted: set[str], tried: dict[str, list[str]],
                restate: dict[str, FieldSpec] | None = None) -> dict[str, list[Candidate]]:
    """Every candidate value of the ``wanted`` fields at the labels found on each line
    (``hits_by_line``), by field; what stood at a label and gave no value goes to ``tried``.
    ``restate`` names the field (the net) whose value may be followed by another's (the net tons):
    see :mod:`plugins.template_restated`."""
    found: dict[str, list[Candidate]] = {}
    for index, hits in enumerate(hits_by_line):
        line = lines[index]
        groups = _groups(line, hits)
        spans = [(hits[group[0]].start, hits[group[-1]].end) for group in groups]
        for number, group in enumerate(groups):
            if not any(hits[position].field.name in wanted for position in group):
                continue
            last = group[-1]
            end = hits[last + 1].start if last + 1 < len(hits) else len(line)
            start, tail_quality, unit = _label_tail(line, hits[last].end, end)
            readings = [_Reading(hits[p], hits[p].quality * tail_quality, unit or _label_unit(line, hits[p]), True,
                                 (index, p), p != last, len(group) > 1, (restate or {}).get(hits[p].field.name))
                        for p in group]
            unread = _read_in_turn(readings, line, start, end, placed[index], wanted, found, tried)
            for under in _lines_below(lines, placed, hits_by_line, index) if unread else []:
                column = below(spans, number, placed[index], lines[under], placed[under])
                if column is not None:
                    text, column_placed = column
                    unread = _read_in_turn([replace(reading, same_line=False) for reading in unread], text, 0,
                                           len(text), column_placed, wanted, found, tried)
                if not unread:
                    break
    return found


def best(found: list[Candidate]) -> Candidate:
    """The first of the best rank; a guess, at low confidence, when another of that rank disagrees."""
    first = min(found, key=lambda c: (c.rank, c.order))
    if any(c.rank == first.rank and c.value != first.value for c in found):
        return replace(first, confidence=round(first.confidence * AMBIGUOUS, 4))
    return first
