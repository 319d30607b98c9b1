"""The words of an OCR line as extraction sees them (see :mod:`plugins.template_extract`).

- Each word is placed at its character span in the line's text.
- A gap between two words wider than ``GAP_HEIGHTS`` times the line's word height is a gap
  between columns: its spaces become tabs (the line keeps its length, so offsets hold), and a
  label of several words or an id of two parts never spans it. A text layer read with its layout
  keeps such gaps as runs of spaces.
- A speckle is a word OCR read with little confidence that holds no letter or digit, or is one or
  two stray letters; a unit written after a number ("kg", "t") is never one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from statistics import median

from engine.records import Word
from plugins.template_numbers import unit_word

JUNK_CONFIDENCE = 60.0  # below this, an edge word without letters or digits (or a stray letter) is a speckle
BLANK_LINE_CONFIDENCE = 30.0  # a line whose words are all below this is noise, skipped when looking below
GAP_HEIGHTS = 2.0  # a gap between words wider than this many word heights separates columns

__all__ = ["BLANK_LINE_CONFIDENCE", "GAP_HEIGHTS", "JUNK_CONFIDENCE", "Placed", "blank", "is_junk", "mark_gaps",
           "place", "unit_after_number"]


@dataclass(frozen=True)
class Placed:
    """A word of an OCR line and its character span in the line's text."""

    start: int
    end: int
    word: Word


def place(line: str, words: list[Word]) -> list[Placed]:
    """The words' spans in ``line`` (they appear in it in order); none when they cannot be placed."""
    placed, offset = [], 0
    for word in words:
        at = line.find(word.text, offset)
        if at < 0:
            return []
        placed.append(Placed(at, at + len(word.text), word))
        offset = at + len(word.text)
    return placed


def mark_gaps(line: str, placed: list[Placed]) -> str:
    """``line`` with the spaces of each gap between columns turned into tabs (same length)."""
    heights = [p.word.height for p in placed if p.word.height > 0]
    if len(placed) < 2 or not heights:
        return line
    widest = GAP_HEIGHTS * median(heights)
    marked = list(line)
    for before, after in zip(placed, placed[1:]):
        between = line[before.end:after.start]
        gap = after.word.left - (before.word.left + before.word.width)
        if between and not between.strip() and gap > widest:
            marked[before.end:after.start] = "\t" * len(between)
    return "".join(marked)


def unit_after_number(line: str, start: int, placed: Placed) -> bool:
    """The word reads as a weight unit ("kg", "t", not a lone "#": that is more often a speckle)
    and stands right after a number in ``line[start:]``."""
    return unit_word(placed.word.text, after_number=True) is not None \
        and re.search(r"[A-Za-z]", placed.word.text) is not None \
        and re.search(r"[0-9]\s*$", line[start:placed.start]) is not None


def is_junk(word: Word) -> bool:
    """A speckle read as a word: unsure, and no letter or digit in it, or one or two stray letters."""
    if word.confidence >= JUNK_CONFIDENCE:
        return False
    kept = re.sub(r"[^A-Za-z0-9]", "", word.text)
    return not kept or (len(word.text) <= 2 and not kept.isdigit())


def blank(line: str, placed: list[Placed]) -> bool:
    """A line with nothing to read: no letter or digit, or only words OCR was very unsure of."""
    if not re.search(r"[A-Za-z0-9]", line):
        return True
    return bool(placed) and all(p.word.confidence < BLANK_LINE_CONFIDENCE for p in placed)
