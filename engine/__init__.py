"""pagemill's public API: Engine, EngineConfig, hookimpl and the records."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("pagemill")
