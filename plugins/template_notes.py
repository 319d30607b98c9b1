"""What extraction saw on a page that its fields cannot say, kept for that page's validation.

A field is a value; a label found with nothing readable after it, a date printed but impossible,
or a page OCR could hardly read are facts about the page, not values. Extraction leaves them here
(:func:`leave`) and validation takes them (:func:`take`), in the same worker, for the same page:
both run one after the other within one page's stages. Notes are keyed by the page's document,
hash and index, so pages read at the same time in threads of one process do not mix; a page whose
validation never ran leaves a note that the oldest-first bound forgets.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from engine.records import PageTask

KEPT = 256  # notes of pages extracted but not validated (a stage failed between): the oldest go

__all__ = ["PageNotes", "Unlabelled", "Unreadable", "leave", "take"]


@dataclass(frozen=True)
class Unreadable:
    """A field's label found on the page with no acceptable value after it or below it."""

    field: str
    read: str  # what stands where the value should be ("" when nothing does)
    impossible_date: bool = False  # a date written in full that is no date (02/30/2025)


@dataclass(frozen=True)
class Unlabelled:
    """A line that starts like a label ("JPUGK: T-S636") that OCR read too poorly to match any."""

    line: str
    confidence: float  # the mean OCR confidence of its label words, 0..1


@dataclass(frozen=True)
class PageNotes:
    unreadable: tuple[Unreadable, ...] = ()
    unlabelled: tuple[Unlabelled, ...] = ()
    ocr_confidence: float | None = None  # mean OCR confidence of the page, 0..100; None for a text layer


_notes: OrderedDict[tuple[str, str, int], PageNotes] = OrderedDict()
_lock = threading.Lock()


def _key(page: PageTask) -> tuple[str, str, int]:
    return (page.document, page.sha256, page.index)


def leave(page: PageTask, notes: PageNotes) -> None:
    """Keep ``notes`` for ``page``'s validation (replacing any earlier ones: a page read again)."""
    with _lock:
        _notes[_key(page)] = notes
        _notes.move_to_end(_key(page))
        while len(_notes) > KEPT:
            _notes.popitem(last=False)


def take(page: PageTask) -> PageNotes:
    """The notes left for ``page``, once; empty notes when there are none."""
    with _lock:
        return _notes.pop(_key(page), PageNotes())
