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


# name -> the module it lives in: loaded only when asked for (Engine imports the pool and the
# plugins' machinery), so that plugins importing ``engine.hookimpl`` stay light in worker processes
_LAZY = {
    "Engine": "engine.api",
    "Job": "engine.jobs",
    "JobProgress": "engine.jobs",
    "RunProgress": "engine.run_progress",
    "StageRate": "engine.rates",
    "PagemillError": "engine.errors",
    "ConfigError": "engine.errors",
    "CriticalError": "engine.errors",
    "LedgerError": "engine.errors",
    "EngineClosedError": "engine.errors",
    "PluginError": "engine.errors",
    "PluginLoadError": "engine.errors",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Engine",
    "Job",
    "JobProgress",
    "RunProgress",
    "StageRate",
    "PagemillError",
    "ConfigError",
    "CriticalError",
    "LedgerError",
    "EngineClosedError",
    "PluginError",
    "PluginLoadError",
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
