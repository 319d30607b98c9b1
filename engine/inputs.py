"""What process(), run() and submit() are given: paths by priority, turned into lazy document
feeds, and stored with the run so that ``resume`` reads them back as they were given."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from engine.config import EngineConfig
from engine.discovery import check_inputs, iter_documents
from engine.errors import ConfigError
from engine.jobs import Feeds
from engine.records import PRIORITY_RANKS, Document

PathLike = str | os.PathLike[str]
Inputs = Iterable[PathLike] | PathLike | Mapping[str, Iterable[PathLike]]


def priority_of(config: EngineConfig, priority: object) -> str:
    name = config.priority if priority is None else str(priority).strip().lower()
    if name not in PRIORITY_RANKS:
        raise ConfigError(f"unknown priority {priority!r}: use one of {', '.join(PRIORITY_RANKS)}")
    return name


def feeds_of(config: EngineConfig, paths: Inputs, priority: str | None,
             documents: Iterable[Document] | None) -> tuple[Feeds, dict[str, Any]]:
    """Lazy document feeds, one per priority, and the inputs as stored for ``resume``: as given,
    with the folder they are relative to (read back with :func:`stored_inputs`)."""
    if documents is not None:
        return [(priority_of(config, priority), documents)], {}
    if isinstance(paths, Mapping):
        groups = [(priority_of(config, p), v) for p, v in paths.items()]
    else:
        groups = [(priority_of(config, priority), paths)]
    exclude = Path(config.out_dir) if config.out_dir else None
    feeds: Feeds = []
    given: dict[str, list[str]] = {}
    for group_priority, group in groups:
        items = [group] if isinstance(group, (str, os.PathLike)) else list(group)
        if not items:
            continue
        checked = check_inputs(items)
        given.setdefault(group_priority, []).extend(checked)
        feeds.append((group_priority, iter_documents(checked, group_priority, exclude)))
    if not feeds:
        check_inputs([])  # raises: no input
    return feeds, {"cwd": os.getcwd(), "inputs": given}


def stored_inputs(snapshot: Mapping[str, Any]) -> dict[str, list[str]]:
    """The inputs of a stored run (``Ledger.last_config()``) as ``{priority: [path, ...]}``.

    Paths come back as the user gave them when the working directory is the one they were given
    in, else relative to the current one, else absolute; so a resumed run names every document
    as the first run did. Snapshots of older versions (absolute paths only) are read too.
    """
    stored = snapshot.get("inputs") or {}
    if isinstance(stored.get("inputs"), Mapping):
        cwd, groups = stored.get("cwd"), stored["inputs"]
    else:
        cwd, groups = None, stored
    here = os.getcwd()
    return {str(priority): [_from_cwd(str(p), cwd, here) for p in paths] for priority, paths in groups.items() if paths}


def _from_cwd(path: str, cwd: str | None, here: str) -> str:
    if path == "-" or not cwd or cwd == here or os.path.isabs(path):
        return path
    absolute = os.path.normpath(os.path.join(cwd, path))
    try:
        return os.path.relpath(absolute, here)
    except ValueError:  # another drive
        return absolute


__all__ = ["Inputs", "PathLike", "feeds_of", "priority_of", "stored_inputs"]
