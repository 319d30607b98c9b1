"""The pluggy plugin manager: built-ins and entry points, --plugin paths, objects passed in.

A :class:`PluginRegistry` lives in the parent and in every worker. The parent's registry is the
source of truth; it hands workers a list of picklable :class:`PluginSpec` from which each worker
builds the same set of plugins (entry points and modules are imported again, files are loaded
again from their path, objects travel pickled).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import pickle
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pluggy
from loguru import logger

from engine import hookspecs
from engine.errors import PluginLoadError

ENTRY_POINT_GROUP = "pagemill"


@dataclass(frozen=True)
class PluginSpec:
    """How to load one plugin again in another process."""

    name: str
    kind: str  # "entry-point", "path", "module" or "object"
    ref: str  # entry point value, file path or module name ("" for objects)
    origin: str  # for people: where it came from
    payload: bytes = b""  # the pickled object, for kind "object"


@dataclass(frozen=True)
class PluginListing:
    name: str
    origin: str
    hooks: tuple[str, ...]


class PluginRegistry:
    """A pluggy PluginManager with pagemill's hooks and the plugins of one run."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("pagemill")
        self.manager.add_hookspecs(hookspecs)
        self.specs: list[PluginSpec] = []
        self._module_to_plugin: dict[str, str] = {}

    @property
    def hook(self) -> Any:
        return self.manager.hook

    # ----------------------------------------------------------------- loading
    @classmethod
    def for_run(
        cls,
        plugin_refs: Iterable[str] = (),
        objects: Iterable[object] = (),
        load_entry_points: bool = True,
    ) -> PluginRegistry:
        """Entry points of group ``pagemill``, then ``--plugin`` refs, then objects passed in."""
        registry = cls()
        if load_entry_points:
            registry.load_entry_points()
        for ref in plugin_refs:
            registry.load_ref(ref)
        for obj in objects:
            registry.add_object(obj)
        return registry

    @classmethod
    def from_specs(cls, specs: Iterable[PluginSpec]) -> PluginRegistry:
        """Rebuild the parent's plugins in a worker."""
        registry = cls()
        for spec in specs:
            if spec.kind == "object":
                try:
                    obj = pickle.loads(spec.payload)
                except Exception as exc:  # noqa: BLE001 - any unpickling failure is a load error
                    raise PluginLoadError(f"plugin {spec.name} cannot be loaded in a worker: {exc}") from None
            elif spec.kind == "path":
                obj = _import_path(spec.ref)
            else:
                obj = _import_module(spec.ref, spec.name)
            registry._register(obj, spec)
        return registry

    def load_entry_points(self) -> None:
        for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if self.manager.has_plugin(entry_point.name):
                continue
            dist = entry_point.dist.name if entry_point.dist else "?"
            try:
                obj = entry_point.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not be a traceback
                raise PluginLoadError(
                    f"plugin {entry_point.name} ({entry_point.value}, from {dist}) failed to import: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            spec = PluginSpec(entry_point.name, "entry-point", entry_point.value, f"entry point ({dist})")
            self._register(obj, spec)

    def load_ref(self, ref: str) -> None:
        """``--plugin path/to/file.py`` or ``--plugin package.module``."""
        if ref.endswith(".py") or "/" in ref or Path(ref).is_file():
            path = str(Path(ref).resolve())
            obj = _import_path(path)
            self._register(obj, PluginSpec(Path(path).stem, "path", path, f"file {path}"))
        else:
            obj = _import_module(ref, ref)
            self._register(obj, PluginSpec(ref, "module", ref, f"module {ref}"))

    def add_object(self, obj: object) -> None:
        """A plugin object passed to the Python API: a module, a class or an instance."""
        if isinstance(obj, types.ModuleType):
            self._register(obj, PluginSpec(obj.__name__, "module", obj.__name__, f"module {obj.__name__}"))
            return
        name = getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__
        try:
            payload = pickle.dumps(obj)
        except Exception as exc:  # noqa: BLE001
            raise PluginLoadError(
                f"plugin object {name} cannot be pickled to reach the workers ({exc}); "
                "define its class at module level"
            ) from None
        self._register(obj, PluginSpec(str(name), "object", "", "object passed in Python", payload))

    def add_parent_plugin(self, obj: object, name: str) -> None:
        """A plugin for parent-side hooks only (sinks): never sent to workers."""
        if not self.manager.has_plugin(name):
            self.manager.register(obj, name=name)

    def _register(self, obj: object, spec: PluginSpec) -> None:
        name = spec.name
        if self.manager.has_plugin(name):
            logger.debug("plugin {} already registered; {} ignored", name, spec.origin)
            return
        try:
            self.manager.register(obj, name=name)
            self.manager.check_pending()  # a hook name that is not in the contract (a typo)
        except Exception as exc:  # noqa: BLE001 - pluggy's validation errors, named
            if self.manager.is_registered(obj):
                self.manager.unregister(obj)
            raise PluginLoadError(f"plugin {name} ({spec.origin}) is not a valid pagemill plugin: {exc}") from None
        self.specs.append(spec)
        module = obj if isinstance(obj, types.ModuleType) else inspect.getmodule(type(obj) if not inspect.isclass(obj) else obj)
        if module is not None:
            self._module_to_plugin[module.__name__] = name

    # ----------------------------------------------------------------- queries
    def listing(self) -> list[PluginListing]:
        rows = []
        for spec in self.specs:
            plugin = self.manager.get_plugin(spec.name)
            hooks = tuple(
                sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or [])
            )
            rows.append(PluginListing(spec.name, spec.origin, hooks))
        return rows

    def plugin_of_traceback(self, tb: types.TracebackType | None) -> str | None:
        """The plugin whose code raised: the innermost frame that belongs to a plugin module."""
        found = None
        while tb is not None:
            module_name = tb.tb_frame.f_globals.get("__name__", "")
            if module_name in self._module_to_plugin:
                found = self._module_to_plugin[module_name]
            tb = tb.tb_next
        return found


def _import_module(module_name: str, plugin_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001
        raise PluginLoadError(f"plugin {plugin_name} failed to import: {type(exc).__name__}: {exc}") from None


def _import_path(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise PluginLoadError(f"plugin file {path} not found")
    module_name = f"pagemill_plugin_{file.stem}"
    if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) == str(file):
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"plugin file {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001
        del sys.modules[module_name]
        raise PluginLoadError(f"plugin file {path} failed to import: {type(exc).__name__}: {exc}") from None
    return module
