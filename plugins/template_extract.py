"""Built-in extraction: fields from a page's text by a TOML template (:mod:`plugins.template_loader`).

How a page is read:

- On each line the labels of every field are found, matched without regard to case, spacing or
  punctuation, and with the letters OCR mistakes for digits folded (``GR0SS`` is ``gross``). A label
  is a whole word: "Gross" is not found in "Grossman". Where labels overlap the longest wins, so
  "Net Tons" is ``net_tons`` and not ``net_lb``. A field still missing after that is looked for
  once more with one wrong or missing letter allowed in a label of five letters or more, at the
  start of a line.
- A field's value is the text after its label up to the next label on the line; when there is none
  (or it does not parse), the text below the label on the next line, cut to the label's column
  when the next line holds several values. Words at either end of a text value that OCR read with
  little confidence and that hold no letter or digit, or are one or two stray letters, are dropped
  (speckles read as words).
- Where a field is found more than once, a value on the label's own line beats one from below; then
  the first in reading order wins.
- The confidence (0..1) of a field is the mean OCR confidence of the value's words, times how
  cleanly its label matched (1.0 as written, 0.9 after folding OCR slips, 0.8 with a wrong letter)
  and how cleanly the value parsed (:mod:`plugins.template_values`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine import hookimpl
from engine.records import Field, OcrResult, PageTask, Word
from plugins.template_loader import FieldSpec, Template, load_template
from plugins.template_values import parse_value, unit_after

LABEL_QUALITY = {"exact": 1.0, "folded": 0.9, "fuzzy": 0.8}
FUZZY_MIN_LETTERS = 5  # shorter labels ("tare", "net") are too easily another word with one letter off
JUNK_CONFIDENCE = 60.0  # below this, an edge word without letters or digits (or a stray letter) is a speckle
BLANK_LINE_CONFIDENCE = 30.0  # a line whose words are all below this is noise, skipped when looking below
# letters OCR reads for others (and digits for letters) inside label words; one character for one
# so that offsets in the folded line are offsets in the line
LABEL_FOLD = str.maketrans({"0": "o", "1": "l", "|": "l", "i": "l", "!": "l", "5": "s", "8": "b", "$": "s"})

__all__ = ["FieldSpec", "LabelHit", "Template", "extract_fields", "find_labels", "load_template"]


# ------------------------------------------------------------------- labels
def _fold(text: str) -> str:
    return text.lower().translate(LABEL_FOLD)


def _label_words(label: str) -> list[str]:
    return re.findall(r"[a-z0-9#]+", _fold(label))


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9#]", "", text.lower())


_label_regexes: dict[str, re.Pattern[str]] = {}
_fuzzy_regexes: dict[str, re.Pattern[str] | None] = {}
_SEPARATOR = r"[\s.:_-]*"


def _label_regex(label: str) -> re.Pattern[str]:
    """A label as a regex over folded text: its words separated by any spaces or punctuation."""
    if label not in _label_regexes:
        _label_regexes[label] = re.compile(_SEPARATOR.join(re.escape(word) for word in _label_words(label)))
    return _label_regexes[label]


def _fuzzy_regex(label: str) -> re.Pattern[str] | None:
    """The label with any one letter wrong or missing, at the start of a line; None for short labels."""
    if label not in _fuzzy_regexes:
        words = _label_words(label)
        letters = sum(len(word) for word in words)
        pattern = None
        if letters >= FUZZY_MIN_LETTERS:
            variants = []
            for index, word in enumerate(words):
                for at in range(len(word)):
                    for replacement in (r"\S", ""):
                        changed = re.escape(word[:at]) + replacement + re.escape(word[at + 1:])
                        variants.append(_SEPARATOR.join([*map(re.escape, words[:index]), changed,
                                                         *map(re.escape, words[index + 1:])]))
            pattern = re.compile(r"^[^a-z0-9]*(?P<label>" + "|".join(variants) + ")")
        _fuzzy_regexes[label] = pattern
    return _fuzzy_regexes[label]


@dataclass(frozen=True)
class LabelHit:
    """A field's label found on a line: where (character offsets), and how cleanly."""

    field: FieldSpec
    start: int
    end: int
    match: str = "exact"  # "exact", "folded" (after folding OCR slips) or "fuzzy" (one letter off)

    @property
    def exact(self) -> bool:
        return self.match == "exact"

    @property
    def quality(self) -> float:
        return LABEL_QUALITY[self.match]


def _whole_word(line: str, start: int, end: int) -> bool:
    before = line[start - 1] if start > 0 else " "
    after = line[end] if end < len(line) else " "
    return not before.isalnum() and not after.isalpha()


def _unit_of_a_number(line: str, start: int, end: int) -> bool:
    """A label that is a unit written after a number ("20.5 tons") is the unit, not a label."""
    return unit_after(line[start:end]) is not None and re.search(r"[0-9]\s*(?:short|metric)?\s*$", line[:start],
                                                                 re.IGNORECASE) is not None


def find_labels(line: str, template: Template, fuzzy_fields: frozenset[str] = frozenset()) -> list[LabelHit]:
    """The labels on one line, left to right; where matches overlap the longest wins, and each field
    is taken once. ``fuzzy_fields`` also get one-letter-off matches at the start of the line, which
    give way to any other match."""
    folded = _fold(line)
    hits: list[LabelHit] = []
    for spec in template.fields:
        for label in spec.labels:
            for found in _label_regex(label).finditer(folded):
                start, end = found.span()
                if not _whole_word(line, start, end) or _unit_of_a_number(line, start, end):
                    continue
                exact = _compact(line[start:end]) == _compact(label)
                hits.append(LabelHit(spec, start, end, "exact" if exact else "folded"))
            fuzzy = _fuzzy_regex(label) if spec.name in fuzzy_fields else None
            found = fuzzy.match(folded) if fuzzy else None
            if found is not None and _whole_word(line, found.start("label"), found.end()):
                hits.append(LabelHit(spec, found.start("label"), found.end(), "fuzzy"))
    # left to right, the longest first where two start together; a label overlapping one already
    # taken gives way (so "net" inside "net tons" does, and "ticket date" in "scale ticket . date")
    hits.sort(key=lambda hit: (hit.match == "fuzzy", hit.start, -(hit.end - hit.start), -hit.quality))
    chosen: list[LabelHit] = []
    for hit in hits:
        if any(hit.field.name == c.field.name or (hit.start < c.end and c.start < hit.end) for c in chosen):
            continue
        chosen.append(hit)
    return sorted(chosen, key=lambda hit: hit.start)


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


def _read(spec: FieldSpec, line: str, start: int, end: int, placed: list[_Placed], label_quality: float,
          same_line: bool, order: tuple[int, int]) -> _Candidate | None:
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
    parsed = parse_value(spec.type, text, spec.pattern, spec.unit)
    if parsed is None:
        return None
    value, raw, value_quality = parsed
    words = [p.word for p in placed if p.start < end and p.end > start]
    used = [word for word in words if word.text in raw or raw in word.text] or words
    ocr_confidence = sum(word.confidence for word in used) / len(used) / 100.0 if used else 1.0  # 1.0: a text layer
    confidence = round(max(0.0, min(1.0, ocr_confidence * label_quality * value_quality)), 4)
    return _Candidate(value, raw, confidence, same_line, order)


def _column_of(placed: list[_Placed], offset: int) -> _Placed | None:
    return next((p for p in placed if p.start <= offset < p.end + 1), None)


def _below(hits: list[LabelHit], position: int, label_placed: list[_Placed], line_below: str,
           placed_below: list[_Placed]) -> tuple[str, list[_Placed]] | None:
    """The text below a label: its column of the next line (by word positions when known)."""
    if len(hits) == 1:
        return line_below, placed_below
    if label_placed and placed_below:
        lefts = [_column_of(label_placed, hit.start) for hit in hits]
        if any(left is None for left in lefts):
            return None
        slack = 2 * max(5, lefts[position].word.height)  # type: ignore[union-attr]
        starts = [left.word.left - slack for left in lefts]  # type: ignore[union-attr]
        # a word belongs to the last column starting left of it (the first takes what is further left)
        words = [p.word for p in placed_below
                 if max([0] + [n for n, x in enumerate(starts) if x <= p.word.left]) == position]
        text = " ".join(word.text for word in words)
        return text, _place(text, words)
    columns = [part for part in re.split(r"\s{2,}", line_below.strip()) if part]
    if len(columns) == len(hits):  # a text layer keeps wide gaps between columns
        return columns[position], []
    return None


def _candidates(lines: list[str], placed: list[list[_Placed]], hits_by_line: list[list[LabelHit]],
                wanted: set[str]) -> dict[str, list[_Candidate]]:
    found: dict[str, list[_Candidate]] = {}
    for index, hits in enumerate(hits_by_line):
        line = lines[index]
        for position, hit in enumerate(hits):
            spec = hit.field
            if spec.name not in wanted:
                continue
            end = hits[position + 1].start if position + 1 < len(hits) else len(line)
            order = (index, position)
            candidate = _read(spec, line, hit.end, end, placed[index], hit.quality, True, order)
            if candidate is None:
                below = index + 1
                while below < len(lines) and below <= index + 2 and _blank(lines[below], placed[below]):
                    below += 1
                if below < len(lines) and not hits_by_line[below]:
                    column = _below(hits, position, placed[index], lines[below], placed[below])
                    if column is not None:
                        text, column_placed = column
                        candidate = _read(spec, text, 0, len(text), column_placed, hit.quality, False, order)
            if candidate is not None:
                found.setdefault(spec.name, []).append(candidate)
    return found


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
            best = min(found[spec.name], key=lambda c: (not c.same_line, c.order))
            fields.append(Field(spec.name, best.value, best.confidence, best.raw, spec.type))
    return fields


@hookimpl
def pagemill_extract(page: PageTask, ocr: OcrResult, config: Any) -> list[Field]:
    return extract_fields(ocr, load_template(config.template))
