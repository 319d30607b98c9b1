"""pagemill's public API: Engine, EngineConfig, hookimpl and the records."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("pagemill")

from engine.config import EngineConfig  # noqa: E402
from engine.records import (  # noqa: E402
    Document,
    ErrorInfo,
    Field,
    Issue,
    OcrResult,
    PageContent,
    PageResult,
    PageTask,
    RunSummary,
    Word,
)
from engine.seen import PageKey, Place, SeenValues  # noqa: E402


def __getattr__(name: str) -> object:
    # Engine imports the pool and the plugins' machinery; load it only when asked for, so that
    # plugins importing ``engine.hookimpl`` stay light in worker processes.
    if name == "Engine":
        from engine.api import Engine

        return Engine
    raise AttributeError(name)


__all__ = [
    "Engine",
    "EngineConfig",
    "hookimpl",
    "Document",
    "ErrorInfo",
    "Field",
    "Issue",
    "OcrResult",
    "PageContent",
    "PageResult",
    "PageTask",
    "RunSummary",
    "Word",
    "SeenValues",
    "Place",
    "PageKey",
]
