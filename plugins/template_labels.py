"""Labels of template fields found on a line of text (see :mod:`plugins.template_extract`).

A label is matched without regard to case, spacing or punctuation, with the letters OCR mistakes
for digits folded (``GR0SS`` is ``gross``), as a whole word ("Gross" is not found in "Grossman").
Where labels overlap the longest wins, so "Net Tons" is ``net_tons`` and not ``net_lb``. An id
field's label takes the id words written after it ("Ticket Nbr", "Ticket ID", "Truck No."), which
also makes a weak label ("ticket") a strong one. Optionally a label may be one letter off.
A label of several words never spans a gap between columns. A tab is one (marked from OCR word
positions, :func:`plugins.template_words.mark_gaps`); two spaces or more are one only where they
stand between two labels: in a header row "Gross  Tare  Net  Tons" are four labels, not "Net Tons",
while a text layer printed in a fixed-width font keeps its double spaces inside a label ("TICKET
NO." set as "TICKET  NO.", "Net  Weight"). Labels that stand on either side of spaces and are one
label together, with a colon after them ("Net  Tons: 20.67"), are that one label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plugins.template_loader import FieldSpec, Template
from plugins.template_values import unit_after

LABEL_QUALITY = {"exact": 1.0, "folded": 0.9, "fuzzy": 0.8}
FUZZY_MIN_LETTERS = 5  # shorter labels ("tare", "net") are too easily another word with one letter off
# letters OCR reads for others (and digits for letters) inside label words; one character for one
# so that offsets in the folded line are offsets in the line
LABEL_FOLD = str.maketrans({"0": "o", "1": "l", "|": "l", "i": "l", "!": "l", "5": "s", "8": "b", "$": "s"})
# words that say "number" after an id's label, folded as labels are ("ID" folds to "ld")
_ID_WORDS = re.compile(r"[\s.:_-]*(?:(?:number|nbr|num|no|nr|ld|n°|nº)(?![a-z/-])\.?|#)")
_ID_WORDS_AS_WRITTEN = frozenset({"number", "nbr", "num", "no", "nr", "id", "n", "#"})
_SEPARATOR = r"[\s.:_-]*"
COLUMN_GAP = re.compile(r"\t| {2,}")  # between columns: a tab (marked from word positions) or wide spaces
_GAP = re.compile(r"[ \t]*\t[ \t]*| {2,}")  # a run of spaces (and tabs) that may part two columns
_PUNCTUATION = re.compile(r"[^\w\s]*")
_TRAILING_PUNCTUATION = re.compile(r"[^\w\s]*$")
_COLON_AFTER = re.compile(r" ?:")

__all__ = ["COLUMN_GAP", "LABEL_QUALITY", "LabelHit", "find_labels"]


def _fold(text: str) -> str:
    return text.lower().translate(LABEL_FOLD)


def _label_words(label: str) -> list[str]:
    return re.findall(r"[a-z0-9#]+", _fold(label))


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9#]", "", text.lower())


_label_regexes: dict[str, re.Pattern[str]] = {}
_fuzzy_regexes: dict[str, re.Pattern[str] | None] = {}


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
            # a whole word: the first variant that fits may be a shorter one ("gros" in "grose")
            pattern = re.compile(r"^[^a-z0-9]*(?P<label>" + "|".join(variants) + ")(?![a-z])")
        _fuzzy_regexes[label] = pattern
    return _fuzzy_regexes[label]


@dataclass(frozen=True)
class LabelHit:
    """A field's label found on a line: where (character offsets), how cleanly, and whether it is
    one of the field's weak labels (a word that also heads pages, such as "ticket")."""

    field: FieldSpec
    start: int
    end: int
    match: str = "exact"  # "exact", "folded" (after folding OCR slips) or "fuzzy" (one letter off)
    weak: bool = False

    @property
    def exact(self) -> bool:
        return self.match == "exact"

    @property
    def quality(self) -> float:
        return LABEL_QUALITY[self.match]


def _spaced(line: str, start: int, end: int) -> bool:
    """A match with a tab or a run of spaces in it."""
    return COLUMN_GAP.search(line, start, end) is not None


def _column_gaps(line: str, single: list[LabelHit]) -> list[tuple[int, int]]:
    """The gaps between columns on ``line``: each tab (from word positions), and each run of
    spaces with a label ending just before it and another starting just after it (``single``: the
    labels found with no gap inside them), punctuation aside ("Net:  Tons", "Gross  (Tare)")."""
    ends = {hit.end for hit in single}
    starts = {hit.start for hit in single}
    gaps = []
    for gap in _GAP.finditer(line):
        before = _TRAILING_PUNCTUATION.search(line, 0, gap.start()).start()  # type: ignore[union-attr]
        after = _PUNCTUATION.match(line, gap.end()).end()  # type: ignore[union-attr]
        if "\t" in gap.group(0) or (before in ends and after in starts):
            gaps.append(gap.span())
    return gaps


def _across_columns(line: str, gaps: list[tuple[int, int]], start: int, end: int) -> bool:
    """A match with a gap between columns in it; but labels parted by spaces that are one label
    together and have a colon after them ("Net  Tons: 20.67") are that label."""
    inside = [(left, right) for left, right in gaps if left < end and start < right]
    if not inside:
        return False
    if any("\t" in line[left:right] for left, right in inside) or ":" in line[start:end]:
        return True
    return _COLON_AFTER.match(line, end) is None


def _whole_word(line: str, start: int, end: int) -> bool:
    before = line[start - 1] if start > 0 else " "
    after = line[end] if end < len(line) else " "
    return not before.isalnum() and not after.isalpha()


def _unit_of_a_number(line: str, start: int, end: int) -> bool:
    """A label that is a unit written after a number ("20.5 tons") is the unit, not a label."""
    return unit_after(line[start:end]) is not None and re.search(r"[0-9]\s*(?:short|metric)?\s*$", line[:start],
                                                                 re.IGNORECASE) is not None


def _with_id_words(line: str, folded: str, hit: LabelHit, gaps: list[tuple[int, int]]) -> LabelHit:
    """An id's label with the words "No", "Nbr", "#", "ID"... after it taken in (never across a gap
    between columns, ``gaps``); such a label is as specific as any, so a weak one becomes strong."""
    if hit.field.type != "id":
        return hit
    words = _ID_WORDS.match(folded, hit.end)
    if words is None or words.end() == hit.end or line[words.end():words.end() + 1].isalpha() \
            or _across_columns(line, gaps, hit.end, words.end()):
        return hit
    written = _compact(line[hit.end:words.end()])
    match = hit.match if written in _ID_WORDS_AS_WRITTEN or hit.match != "exact" else "folded"
    return LabelHit(hit.field, hit.start, words.end(), match, False)


def find_labels(line: str, template: Template, fuzzy_fields: frozenset[str] = frozenset()) -> list[LabelHit]:
    """The labels on one line, left to right; where matches overlap the longest wins, and each field
    is taken once. ``fuzzy_fields`` also get one-letter-off matches at the start of the line, which
    give way to any other match."""
    folded = _fold(line)
    found: list[LabelHit] = []  # every match, gaps inside it or not
    for spec in template.fields:
        for label, weak in [*((label, False) for label in spec.labels), *((label, True) for label in spec.weak_labels)]:
            for match in _label_regex(label).finditer(folded):
                start, end = match.span()
                if _whole_word(line, start, end) and not _unit_of_a_number(line, start, end):
                    exact = _compact(line[start:end]) == _compact(label)
                    found.append(LabelHit(spec, start, end, "exact" if exact else "folded", weak))
            fuzzy = _fuzzy_regex(label) if spec.name in fuzzy_fields else None
            match = fuzzy.match(folded) if fuzzy else None
            if match is not None and _whole_word(line, match.start("label"), match.end()):
                found.append(LabelHit(spec, match.start("label"), match.end(), "fuzzy", weak))
    gaps = _column_gaps(line, [hit for hit in found if hit.match != "fuzzy" and not _spaced(line, hit.start, hit.end)])
    hits = [_with_id_words(line, folded, hit, gaps) for hit in found
            if not _across_columns(line, gaps, hit.start, hit.end)]
    # left to right, the longest first where two start together; a label overlapping one already
    # taken gives way (so "net" inside "net tons" does, and "ticket date" in "scale ticket . date")
    hits.sort(key=lambda hit: (hit.match == "fuzzy", hit.start, -(hit.end - hit.start), -hit.quality, hit.weak))
    chosen: list[LabelHit] = []
    for hit in hits:
        if any(hit.field.name == c.field.name or (hit.start < c.end and c.start < hit.end) for c in chosen):
            continue
        chosen.append(hit)
    return sorted(chosen, key=lambda hit: hit.start)
