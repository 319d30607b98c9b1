"""Built-in extraction: fields from a page's text by a TOML template (:mod:`plugins.template_loader`).

How a page is read:

- On each line the labels of every field are found (:mod:`plugins.template_labels`). A field
  still missing after that is looked for once more with one wrong or missing letter allowed in a
  label of five letters or more, at the start of a line.
- A field's value is the text after its label up to the next label on the line; when there is none
  (or it does not parse), the text below the label on the next line, cut to the label's column
  when the next line holds several labels' values (a header row). Words at either end of a value
  that OCR read with little confidence and that hold no letter or digit, or are one or two stray
  letters, are dropped (speckles read as words). Labels joined by "/", "&" or "and" ("Date/Time")
  share the value after them, each field taking its part in turn; words between a label and its
  colon ("Truck/Trailer:", "Gross (kg):") belong to the label, and a unit among them is the unit
  of a weight written without one.
- Where a field is found more than once, the candidates are ranked: a strong label before a weak
  one (a word that also heads pages: "ticket"), a value that fills its place below the label
  before one that is only part of it ("1234 Quarry Road" under "SCALE TICKET"), a value on the
  label's own line before one from below, then reading order. A weak label never takes a value
  that is only part of what follows it. When the best two of a rank disagree, the choice is a
  guess and its confidence drops low enough for review.
- The confidence (0..1) of a field is the mean OCR confidence of the value's words, times how
  cleanly its label matched (1.0 as written, 0.9 after folding OCR slips, 0.8 with a wrong letter)
  and how cleanly the value parsed (:mod:`plugins.template_values`), and lower for a value read
  from the line below its label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from engine import hookimpl
from engine.records import Field, OcrResult, PageTask, Word
from plugins.template_labels import LabelHit, find_labels
from plugins.template_loader import FieldSpec, Template, load_template
from plugins.template_values import AMBIGUOUS, parse_value, unit_in

JUNK_CONFIDENCE = 60.0  # below this, an edge word without letters or digits (or a stray letter) is a speckle
BLANK_LINE_CONFIDENCE = 30.0  # a line whose words are all below this is noise, skipped when looking below
BELOW = 0.9  # a value read from the line below its label: the layout was guessed
POOR_FIT = 0.8  # a value below its label that is only part of what is written there
LABEL_WORDS = 0.95  # words between a label and its colon ("Truck/Trailer:") make the label less certain
_JOINED = re.compile(r"\s*(?:[/&+]|\band\b)\s*", re.IGNORECASE)  # "Date/Time", "Date & Time"
_TAIL = re.compile(r"([^:\n]{1,24}?):")  # what stands between a label and its colon

__all__ = ["FieldSpec", "LabelHit", "Template", "extract_fields", "find_labels", "load_template",
           "pagemill_extract", "pagemill_preflight", "pagemill_output_fields"]


# -------------------------------------------------------------------- words
@dataclass(frozen=True)
class _Placed:
    """A word of an OCR line and its character span in the line's text."""

    start: int
    end: int
    word: Word


def _place(line: str, words: list[Word]) -> list[_Placed]:
    """The words' spans in ``line`` (they appear in it in order); none when they cannot be placed."""
    placed, offset = [], 0
    for word in words:
        at = line.find(word.text, offset)
        if at < 0:
            return []
        placed.append(_Placed(at, at + len(word.text), word))
        offset = at + len(word.text)
    return placed


def _is_junk(word: Word) -> bool:
    """A speckle read as a word: unsure, and no letter or digit in it, or one or two stray letters."""
    if word.confidence >= JUNK_CONFIDENCE:
        return False
    kept = re.sub(r"[^A-Za-z0-9]", "", word.text)
    return not kept or (len(word.text) <= 2 and not kept.isdigit())


def _blank(line: str, placed: list[_Placed]) -> bool:
    if not re.search(r"[A-Za-z0-9]", line):
        return True
    return bool(placed) and all(p.word.confidence < BLANK_LINE_CONFIDENCE for p in placed)


# ------------------------------------------------------------------- values
@dataclass(frozen=True)
class _Candidate:
    value: Any
    raw: str
    confidence: float
    same_line: bool
    order: tuple[int, int]  # line, position: reading order
    weak: bool = False  # found by a weak label
    poor_fit: bool = False  # below its label, and only part of what is written there
    stop: int = 0  # where the value's text ends in what was read

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


def _read(reading: _Reading, line: str, start: int, end: int, placed: list[_Placed]) -> _Candidate | None:
    """The field's value in ``line[start:end]``, speckles at either end left out."""
    inside = [p for p in placed if p.start >= start and p.end <= end]
    for p in inside:  # leading speckles
        if re.search(r"[A-Za-z0-9]", line[start:p.start]) or not _is_junk(p.word):
            break
        start = p.end
    for p in reversed(inside):  # trailing speckles
        if re.search(r"[A-Za-z0-9]", line[p.end:end]) or not _is_junk(p.word):
            break
        end = p.start
    text = line[start:end]
    if not re.search(r"[A-Za-z0-9]", text):
        return None
    spec = reading.hit.field
    parsed = parse_value(spec.type, text, spec.pattern, spec.unit, spec.date_order, reading.unit)
    if parsed is None:
        return None
    value, raw, value_quality = parsed
    at, stop = _span_of(raw, text)
    partial = re.search(r"[A-Za-z0-9]", text[:at] + " " + ("" if reading.shared else text[stop:])) is not None
    if reading.hit.weak and partial:
        return None  # "SCALE TICKET" over "1234 Quarry Road" is a heading, not a label
    poor_fit = partial and not reading.same_line
    words = [p.word for p in placed if p.start < end and p.end > start]
    used = [word for word in words if word.text in raw or raw in word.text] or words
    ocr_confidence = sum(word.confidence for word in used) / len(used) / 100.0 if used else 1.0  # 1.0: a text layer
    layout = (1.0 if reading.same_line else BELOW) * (POOR_FIT if poor_fit else 1.0)
    confidence = round(max(0.0, min(1.0, ocr_confidence * reading.quality * value_quality * layout)), 4)
    return _Candidate(value, raw, confidence, reading.same_line, reading.order, reading.hit.weak, poor_fit,
                      start + stop)


def _below(spans: list[tuple[int, int]], position: int, label_placed: list[_Placed], line_below: str,
           placed_below: list[_Placed]) -> tuple[str, list[_Placed]] | None:
    """The text below a label (``spans``: the character spans of the line's labels): its column of
    the next line, by word positions when known."""
    if len(spans) == 1:
        return line_below, placed_below
    if label_placed and placed_below:
        columns = [[p.word for p in label_placed if p.end > start and p.start < end] for start, end in spans]
        if not all(columns):
            return None
        lefts = [min(word.left for word in words) for words in columns]
        rights = [max(word.left + word.width for word in words) for words in columns]
        slack = 2 * max(5, columns[position][0].height)
        starts = [left - slack for left in lefts]

        def column(word: Word) -> int:
            # under a label's own width; else the last column starting left of it (the first
            # takes what is further left)
            overlaps = [min(right, word.left + word.width) - max(left, word.left) for left, right in zip(lefts, rights)]
            if max(overlaps) > 0:
                return overlaps.index(max(overlaps))
            return max([0] + [n for n, x in enumerate(starts) if x <= word.left])

        words = [p.word for p in placed_below if column(p.word) == position]
        text = " ".join(word.text for word in words)
        return text, _place(text, words)
    columns_text = [part for part in re.split(r"\s{2,}", line_below.strip()) if part]
    if len(columns_text) == len(spans):  # a text layer keeps wide gaps between columns
        return columns_text[position], []
    return None


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
    tail = _TAIL.match(line, start, end)
    if tail is None or re.search(r"[0-9]", tail.group(1)) or not re.search(r"[A-Za-z]", tail.group(1)) \
            or len(tail.group(1).split()) > 2:
        return start, 1.0, None
    unit = unit_in(tail.group(1))
    return tail.end(), 1.0 if unit else LABEL_WORDS, unit


def _read_in_turn(readings: list[_Reading], text: str, start: int, end: int, placed: list[_Placed],
                  wanted: set[str], found: dict[str, list[_Candidate]]) -> list[_Reading]:
    """Each field's value in turn, the next reading after the last value; the readings left unread."""
    unread = []
    for reading in readings:
        candidate = _read(reading, text, start, end, placed)
        if candidate is None:
            unread.append(reading)
            continue
        start = candidate.stop
        if reading.hit.field.name in wanted:
            found.setdefault(reading.hit.field.name, []).append(candidate)
    return unread


def _candidates(lines: list[str], placed: list[list[_Placed]], hits_by_line: list[list[LabelHit]],
                wanted: set[str]) -> dict[str, list[_Candidate]]:
    found: dict[str, list[_Candidate]] = {}
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
            readings = [_Reading(hits[p], hits[p].quality * tail_quality, unit, True, (index, p), p != last)
                        for p in group]
            unread = _read_in_turn(readings, line, start, end, placed[index], wanted, found)
            if not unread:
                continue
            below = index + 1
            while below < len(lines) and below <= index + 2 and _blank(lines[below], placed[below]):
                below += 1
            if below < len(lines) and not hits_by_line[below]:
                column = _below(spans, number, placed[index], lines[below], placed[below])
                if column is not None:
                    text, column_placed = column
                    _read_in_turn([replace(reading, same_line=False) for reading in unread], text, 0, len(text),
                                  column_placed, wanted, found)
    return found


def _best(candidates: list[_Candidate]) -> _Candidate:
    """The first of the best rank; a guess, at low confidence, when another of that rank disagrees."""
    best = min(candidates, key=lambda c: (c.rank, c.order))
    if any(c.rank == best.rank and c.value != best.value for c in candidates):
        return replace(best, confidence=round(best.confidence * AMBIGUOUS, 4))
    return best


def extract_fields(ocr: OcrResult, template: Template) -> list[Field]:
    """The template's fields found in an OCR result (or a text layer), in template order."""
    lines = list(ocr.lines) if ocr.lines else ocr.text.splitlines()
    words_by_line: list[list[Word]] = [[] for _ in lines]
    for word in ocr.words:
        if 0 <= word.line < len(lines):
            words_by_line[word.line].append(word)
    placed = [_place(line, words) for line, words in zip(lines, words_by_line)]
    names = {spec.name for spec in template.fields}
    hits = [find_labels(line, template) for line in lines]
    found = _candidates(lines, placed, hits, names)
    missing = frozenset(names - set(found))
    if missing:
        fuzzy_hits = [find_labels(line, template, missing) for line in lines]
        found.update(_candidates(lines, placed, fuzzy_hits, set(missing)))
    fields = []
    for spec in template.fields:
        if spec.name in found:
            best = _best(found[spec.name])
            fields.append(Field(spec.name, best.value, best.confidence, best.raw, spec.type))
    return fields


@hookimpl
def pagemill_preflight(config: Any) -> None:
    """The template of ``--template`` is found and valid, before any page is read: a bad one is a
    :class:`engine.errors.ConfigError` naming the template and the problem (exit 2)."""
    load_template(config.template)


@hookimpl
def pagemill_output_fields(config: Any) -> list[str]:
    """The template's fields, in the template's order: the columns of results.csv."""
    return [spec.name for spec in load_template(config.template).fields]


@hookimpl
def pagemill_extract(page: PageTask, ocr: OcrResult, config: Any) -> list[Field]:
    return extract_fields(ocr, load_template(config.template))
