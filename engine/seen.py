"""SeenValues: what a run has seen so far, for checks across pages (duplicate ticket numbers)."""

from __future__ import annotations

from typing import Any


class SeenValues:
    """Remembers, per field name, where each value was first seen in the run.

    Lives in the parent. ``first_seen`` records the value at ``where`` unless it was seen before,
    and returns the place it was seen before (or ``None``): one call does check and record.
    """

    def __init__(self) -> None:
        self._places: dict[str, dict[Any, str]] = {}

    def first_seen(self, name: str, value: Any, where: str) -> str | None:
        places = self._places.setdefault(name, {})
        earlier = places.get(value)
        if earlier is None:
            places[value] = where
            return None
        return earlier if earlier != where else None

    def count(self, name: str) -> int:
        return len(self._places.get(name, {}))
