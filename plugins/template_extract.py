"""Built-in extraction: fields from a page's text by a TOML template (:mod:`plugins.template_loader`).

How a page is read:

- On each line the labels of every field are found (:mod:`plugins.template_labels`). A field
  still missing after that is looked for once more with one wrong or missing letter allowed in a
  label of five letters or more, at the start of a line. Gaps between columns (from OCR word
  positions, or wide spaces in a text layer) split labels: see :mod:`plugins.template_words`.
- Each field's candidate values are read at its labels, on their line or below them, ranked, and
  given a confidence (0..1) from OCR, the label's match and the value's parse: see
  :mod:`plugins.template_candidates`. The net tons a ticket prints right after the net, with no
  label of their own, are read as the net tons (:mod:`plugins.template_restated`).
- What a field cannot say goes to validation as the page's notes (:mod:`plugins.template_notes`):
  a label found with no readable value (and what stood there), an impossible date, a line that
  starts like a label OCR could not read, and the page's mean OCR confidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine import hookimpl
from engine.records import Field, OcrResult, PageTask, Word
from plugins import template_notes
from plugins.template_candidates import BELOW, best, candidates
from plugins.template_columns import header_by_words
from plugins.template_dates import impossible_date
from plugins.template_labels import LabelHit, find_labels
from plugins.template_loader import FieldSpec, Template, load_template
from plugins.template_notes import PageNotes, Unlabelled, Unreadable
from plugins.template_restated import restatements
from plugins.template_words import JUNK_CONFIDENCE, Placed, mark_gaps, place

# words that stand where a label does: before a colon or a gap between columns ("JPUGK:", "Truck No.:")
_LABEL_LIKE = re.compile(r"^\W*[A-Za-z][^\s:]*(?: [^\s:]+){0,2}(?::|(?=\t| {2,}))")

__all__ = ["BELOW", "FieldSpec", "LabelHit", "PageReading", "Template", "extract_fields", "find_labels",
           "load_template", "pagemill_extract", "pagemill_output_fields", "pagemill_preflight", "read_page"]


# --------------------------------------------------------------------- page
@dataclass(frozen=True)
class PageReading:
    """A page's fields, and what validation should know that they cannot say."""

    fields: tuple[Field, ...]
    notes: PageNotes


def _unreadable(spec: FieldSpec, tried: list[str]) -> Unreadable:
    read = next((text for text in tried if text), "")
    if spec.type == "date":
        for text in tried:
            written = impossible_date(text, spec.date_order)
            if written is not None:
                return Unreadable(spec.name, written, impossible_date=True)
    return Unreadable(spec.name, read[:40])


def _unlabelled(line: str, placed: list[Placed], hits: list[LabelHit]) -> Unlabelled | None:
    """A line starting with words and a colon that match no label, read with little confidence."""
    head = _LABEL_LIKE.match(line)
    if head is None or not placed or not line[head.end():].strip() or any(hit.start < head.end() for hit in hits):
        return None
    words = [p.word for p in placed if p.start < head.end()]
    letters = sum(c.isalpha() for c in line[:head.end()])
    confidence = sum(word.confidence for word in words) / len(words) if words else 100.0
    if letters < 3 or confidence >= JUNK_CONFIDENCE:
        return None
    value = re.split(r"\t+| {2,}", line[head.end():].strip())[0]  # up to the next column
    return Unlabelled(f"{line[:head.end()].strip()} {value}", round(confidence / 100.0, 2))


def _split_headers(lines: list[str], placed: list[list[Placed]], template: Template) -> list[str]:
    """Lines without word positions that are header rows of one-word labels over as many values."""
    for index, line in enumerate(lines):
        if placed[index] or index + 1 >= len(lines):
            continue
        gapped = header_by_words(line, lines[index + 1], template)
        if gapped is not None:
            lines[index] = gapped
    return lines


def read_page(ocr: OcrResult, template: Template) -> PageReading:
    """The template's fields found in an OCR result (or a text layer), in template order, and the
    page's notes for validation."""
    lines = list(ocr.lines) if ocr.lines else ocr.text.splitlines()
    words_by_line: list[list[Word]] = [[] for _ in lines]
    for word in ocr.words:
        if 0 <= word.line < len(lines):
            words_by_line[word.line].append(word)
    placed = [place(line, words) for line, words in zip(lines, words_by_line)]
    lines = _split_headers([mark_gaps(line, spots) for line, spots in zip(lines, placed)], placed, template)
    names = {spec.name for spec in template.fields}
    hits = [find_labels(line, template) for line in lines]
    tried: dict[str, list[str]] = {}
    restate = restatements(template)
    found = candidates(lines, placed, hits, names, tried, restate)
    missing = frozenset(names - set(found))
    if missing:
        fuzzy_hits = [find_labels(line, template, missing) for line in lines]
        found.update(candidates(lines, placed, fuzzy_hits, set(missing), tried, restate))
    for name, target in restate.items():  # the net tons printed after the net, when no label gave them
        again = best(found[name]).restated if name in found and target.name not in found else None
        if again is not None:
            found[target.name] = [again]
    fields, unreadable = [], []
    for spec in template.fields:
        if spec.name in found:
            chosen = best(found[spec.name])
            fields.append(Field(spec.name, chosen.value, chosen.confidence, chosen.raw, spec.type))
        elif spec.name in tried:
            unreadable.append(_unreadable(spec, tried[spec.name]))
    unlabelled = [note for note in (_unlabelled(line, spots, line_hits)
                                    for line, spots, line_hits in zip(lines, placed, hits)) if note is not None]
    ocr_confidence = None if ocr.engine == "text-layer" else ocr.mean_confidence
    return PageReading(tuple(fields), PageNotes(tuple(unreadable), tuple(unlabelled), ocr_confidence))


def extract_fields(ocr: OcrResult, template: Template) -> list[Field]:
    """The template's fields found in an OCR result (or a text layer), in template order."""
    return list(read_page(ocr, template).fields)


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
    """The page's fields; what they cannot say is left for the page's validation."""
    reading = read_page(ocr, load_template(config.template))
    template_notes.leave(page, reading.notes)
    return list(reading.fields)
