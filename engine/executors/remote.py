"""What runs on a Dask worker: one task through a pipeline cached per worker process.

The cache is keyed by the plugin specs, the config and the code of every plugin file (a hash of
its content, taken by the parent), so a plugin file changed between two runs on a long-lived
cluster is loaded again instead of served from the worker's import cache.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import pickle
import sys
from typing import Any

from loguru import logger

_PIPELINES: collections.OrderedDict[str, Any] = collections.OrderedDict()
_KEEP_PIPELINES = 4
_LOADED: dict[str, str] = {}  # plugin file or module -> hash of the code this process loaded

Fingerprint = tuple[tuple[str, str, str], ...]  # (kind, ref, sha256 of the code)


def plugin_fingerprint(specs: list[Any]) -> Fingerprint:
    """A hash of each plugin's code as the parent sees it: files by path, modules by their file."""
    found = []
    for spec in specs:
        path = spec.ref if spec.kind == "path" else _module_file(spec.ref) if spec.kind == "module" else None
        if path is None:
            continue
        try:
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            digest = ""  # unreadable here; the worker says what it finds
        found.append((spec.kind, spec.ref, digest))
    return tuple(found)


def _module_file(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


def run_remote(specs_blob: bytes, fingerprint: Fingerprint, config: Any, seq: int, kind: str, payload: Any,
               topic: str, token: str) -> tuple[int, str, Any]:
    """One task on a Dask worker; its start is reported first, so its deadline starts now."""
    from distributed import get_worker

    from engine.pipeline import StageError

    try:
        worker = get_worker()
        worker.log_event(topic, [token, worker.address])
    except Exception as exc:  # noqa: BLE001 - the page still runs, without a deadline
        logger.debug("cannot report the start of task {}: {}", seq, exc)
    try:
        pipeline = _pipeline(specs_blob, fingerprint, config)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        return (seq, "fatal", f"{type(exc).__name__}: {exc}")
    try:
        if kind == "ingest":
            return (seq, "pages", pipeline.ingest(payload))
        return (seq, "result", pipeline.process(payload))
    except StageError as exc:
        return (seq, "failure", exc.failure)


def _pipeline(specs_blob: bytes, fingerprint: Fingerprint, config: Any) -> Any:
    from engine.pipeline import PagePipeline
    from engine.registry import PluginRegistry

    key = hashlib.sha256(specs_blob + repr(fingerprint).encode() + repr(config).encode()).hexdigest()
    pipeline = _PIPELINES.get(key)
    if pipeline is not None:
        _PIPELINES.move_to_end(key)
        return pipeline
    _forget_changed(fingerprint)
    registry = PluginRegistry.from_specs(pickle.loads(specs_blob))
    for _, ref, digest in fingerprint:
        _LOADED[ref] = digest
    pipeline = PagePipeline(registry, config)
    _PIPELINES[key] = pipeline
    while len(_PIPELINES) > _KEEP_PIPELINES:
        _PIPELINES.popitem(last=False)
    return pipeline


def _forget_changed(fingerprint: Fingerprint) -> None:
    """Drop from the import cache the plugin code that changed since this process loaded it (and
    plugin files it has not loaded itself), so that the registry imports them afresh."""
    for kind, ref, digest in fingerprint:
        if _LOADED.get(ref) == digest:
            continue
        if kind == "path":
            for name, module in list(sys.modules.items()):
                if getattr(module, "__file__", None) == ref:
                    del sys.modules[name]
        elif ref in _LOADED and ref in sys.modules:
            del sys.modules[ref]
