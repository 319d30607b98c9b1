"""Header rows: labels side by side with their values on the line below (see
:mod:`plugins.template_extract`).

A value below a label of a header row is the part of the next line in that label's column: by word
positions when OCR gave them; in a text layer by its gaps between columns (runs of spaces), one
part a label, or by the parts' character offsets under the labels' (a text layer read with its
layout keeps columns aligned, so an empty cell is seen as empty); or, when the row is written
with single spaces, by counting: a row of values that each hold a digit ("61,260 27,900 33,360
16.68", a unit joining its number) as many as the labels above it.
"""

from __future__ import annotations

import re

from engine.records import Word
from plugins.template_labels import COLUMN_GAP, find_labels
from plugins.template_loader import Template
from plugins.template_numbers import unit_word
from plugins.template_words import Placed, place

__all__ = ["below", "cells", "header_by_words"]


def cells(line: str) -> list[str]:
    """The values of a row written with single spaces: its words, a unit joined to the number
    before it; none unless every value holds a digit (words of a text value could not be told
    apart from the next column's)."""
    found: list[str] = []
    for token in line.split():
        if found and re.search(r"[0-9]$", found[-1]) and unit_word(token, after_number=True):
            found[-1] += " " + token
        else:
            found.append(token)
    return found if all(re.search(r"[0-9]", cell) for cell in found) else []


def header_by_words(line: str, line_below: str, template: Template) -> str | None:
    """A header row written with single spaces whose every word is a label of its own ("Gross
    Tare Net Tons" over four values: "Net" and "Tons" are two columns, not "Net Tons"): the line
    with its spaces as gaps between columns; None when the row below does not have one value a word."""
    words = line.split()
    if len(words) < 2 or COLUMN_GAP.search(line) or len(cells(line_below)) != len(words):
        return None
    gapped = re.sub(r" ", "\t", line)
    hits = find_labels(gapped, template)
    if len(hits) != len(words) or len(find_labels(line, template)) == len(words):
        return None
    return gapped


def _runs(line: str) -> list[tuple[int, int, str]]:
    """The parts of a line between gaps between columns, with their offsets."""
    return [(m.start(), m.end(), m.group(0)) for m in re.finditer(r"[^\s]+(?: [^\s]+)*", line)]


def _column(spans: list[tuple[int, int]], start: int, end: int) -> int:
    """The label whose characters a part of the line below overlaps most; else the last one that
    starts left of it."""
    overlaps = [min(end, right) - max(start, left) for left, right in spans]
    if max(overlaps) > 0:
        return overlaps.index(max(overlaps))
    return max([0] + [n for n, (left, _) in enumerate(spans) if left <= start])


def below(spans: list[tuple[int, int]], position: int, label_placed: list[Placed], line_below: str,
          placed_below: list[Placed]) -> tuple[str, list[Placed]] | None:
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
        return text, place(text, words)
    columns_text = [part for part in re.split(r"\t+| {2,}", line_below.strip()) if part]
    if len(columns_text) == len(spans):  # a text layer keeps wide gaps between columns
        return columns_text[position], []
    if COLUMN_GAP.search(line_below.strip()):  # a text layer's layout: columns at the labels' offsets
        return " ".join(text for start, end, text in _runs(line_below) if _column(spans, start, end) == position), []
    row = cells(line_below)
    if len(row) == len(spans):
        return row[position], []
    return None
