"""SeenValues: what a run has seen so far, for checks across pages (duplicate ticket numbers).

Pages finish in whatever order the workers happen to finish them, so a check across pages must
not depend on that order. ``SeenValues`` keeps every place a value was seen, and lets a check
*amend* a page finished earlier: the runner applies each amendment to that page in the ledger (and
the outputs), so the same archive gives the same issues on every page however the work was spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.records import Issue

PageKey = tuple[str, int]  # (sha256 of the document's bytes, 0-based page index): PageResult.key


@dataclass(frozen=True)
class Place:
    """A page where a value was seen: its key and how to name it to a person."""

    key: PageKey | None
    where: str


class SeenValues:
    """Remembers, per field name and value, every place the value was seen in the run.

    Lives in the parent. ``first_seen`` records a place and returns the first place the value was
    seen before (or ``None``); ``places`` gives all of them; ``amend`` asks for an issue to be set on
    an earlier page (replacing any issue of the same code and field there).
    """

    def __init__(self) -> None:
        self._places: dict[str, dict[Any, list[Place]]] = {}
        self._amendments: list[tuple[PageKey, Issue]] = []

    def first_seen(self, name: str, value: Any, where: str, key: PageKey | None = None) -> str | None:
        """Record that field ``name`` has ``value`` at ``where`` (a page named for people, with its
        ``key`` when an amendment may have to reach it); return where it was seen first, or None when
        ``where`` is the first place (recording one place twice counts once)."""
        places = self._places.setdefault(name, {}).setdefault(value, [])
        if not any(place.where == where for place in places):
            places.append(Place(key, where))
        earlier = places[0].where
        return earlier if earlier != where else None

    def places(self, name: str, value: Any) -> list[Place]:
        """Every place ``value`` of field ``name`` was seen, in the order they were recorded."""
        return list(self._places.get(name, {}).get(value, ()))

    def count(self, name: str) -> int:
        return len(self._places.get(name, {}))

    def amend(self, key: PageKey, issue: Issue) -> None:
        """Set ``issue`` on the page ``key`` finished before (it replaces an issue of the same code and field)."""
        self._amendments.append((key, issue))

    def take_amendments(self) -> list[tuple[PageKey, Issue]]:
        """The amendments asked for since the last call (the runner applies them)."""
        taken, self._amendments = self._amendments, []
        return taken
