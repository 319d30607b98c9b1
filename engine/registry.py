"""The pluggy plugin manager: built-ins and entry points, --plugin paths, objects passed in.

A :class:`PluginRegistry` lives in the parent and in every worker. The parent's registry is the
source of truth; it hands workers a list of picklable :class:`PluginSpec` from which each worker
builds the same set of plugins (entry points and modules are imported again, files are loaded
again from their path, objects travel pickled).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import pickle
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import pluggy
from loguru import logger

from engine import hookspecs
from engine.config_paths import is_plugin_path
from engine.errors import PluginLoadError
from engine.hookcalls import guard_plugin

ENTRY_POINT_GROUP = "pagemill"


@dataclass(frozen=True)
class PluginSpec:
    """How to load one plugin again in another process."""

    name: str
    kind: str  # "entry-point", "path", "module" or "object"
    ref: str  # entry point value, file path or module name ("" for objects)
    origin: str  # for people: where it came from
    payload: bytes = b""  # the pickled object, for kind "object"
    search_path: str = ""  # a folder the module was found in that is not on sys.path (kind "module")


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
        """Entry points of group ``pagemill``, then ``--plugin`` refs, then objects passed in (a
        string or a path among them is a ref too: a file or a module name)."""
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
            elif spec.kind == "entry-point":
                obj = _load_entry_point(spec)
            else:
                obj, _ = _import_module(spec.ref, spec.name, spec.search_path)
            registry._register(obj, spec)
        return registry

    def load_entry_points(self) -> None:
        for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = entry_point.dist.name if entry_point.dist else "?"
            known = self._spec_named(entry_point.name)
            if known is not None and known.kind == "entry-point" and known.ref == entry_point.value:
                continue  # the same entry point seen twice on sys.path
            try:
                obj = entry_point.load()
            except BaseException as exc:  # noqa: BLE001 - a broken plugin must not be a traceback
                _reraise_interrupt(exc)
                raise PluginLoadError(
                    f"plugin {entry_point.name} ({entry_point.value}, from {dist}) failed to import: {_describe(exc)}"
                ) from None
            spec = PluginSpec(entry_point.name, "entry-point", entry_point.value, f"entry point ({dist})")
            self._register(obj, spec)

    def load_ref(self, ref: str) -> None:
        """``--plugin path/to/file.py`` or ``--plugin package.module``.

        A file gets its stem as name, or, when another plugin has that name already, the shortest
        tail of its path that is free (``b/plugin.py``), so two files of one name both load.
        Loading the same file or module again is a no-op.
        """
        if is_plugin_path(ref):
            path = str(Path(ref).resolve())
            if any(spec.kind == "path" and spec.ref == path for spec in self.specs):
                return
            obj = _import_path(path)
            self._register(obj, PluginSpec(self._free_name_for(Path(path)), "path", path, f"file {path}"))
        else:
            obj, search_path = _import_module(ref, ref)
            if self._already_has(obj):
                return
            origin = f"module {ref}" + (f" (from {search_path})" if search_path else "")
            self._register(obj, PluginSpec(ref, "module", ref, origin, search_path=search_path))

    def add_object(self, obj: object) -> None:
        """A plugin object passed to the Python API: a module, a class or an instance.

        Its name is its ``name`` attribute, else its ``__name__`` (a class), else its class's name;
        two plugins of one name are refused, so two instances of one class need names of their own.
        The object travels pickled to every worker process.
        """
        if isinstance(obj, (str, os.PathLike)):
            self.load_ref(os.fspath(obj))
            return
        if self._already_has(obj):
            return
        if isinstance(obj, types.ModuleType):
            self._register(obj, PluginSpec(obj.__name__, "module", obj.__name__, f"module {obj.__name__}"))
            return
        name = getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__
        try:
            payload = pickle.dumps(obj)
        except Exception as exc:  # noqa: BLE001
            raise PluginLoadError(f"plugin object {name} cannot be pickled ({_describe(exc)}): {_why_unpicklable(obj)}") from None
        self._register(obj, PluginSpec(str(name), "object", "", "object passed in Python", payload))

    def add_parent_plugin(self, obj: object, name: str, guarded: bool = True) -> None:
        """A plugin for parent-side hooks only (sinks): never sent to workers. ``guarded=False``
        lets its exceptions through unnamed (the engine's own callbacks, which are the caller's)."""
        if not self.manager.has_plugin(name):
            self.manager.register(obj, name=name)
            if guarded:
                guard_plugin(self.manager, obj, name)

    def _register(self, obj: object, spec: PluginSpec) -> None:
        name = spec.name
        taken = self._spec_named(name)
        if taken is not None or self.manager.has_plugin(name):
            where = taken.origin if taken is not None else "a plugin of the engine"
            how = ("give one of them a `name` attribute of its own" if spec.kind == "object"
                   else "rename one of them")
            raise PluginLoadError(f"plugin {name} ({spec.origin}) has the name of another plugin ({where}); {how}")
        try:
            self.manager.register(obj, name=name)
            self.manager.check_pending()  # a hook name that is not in the contract (a typo)
        except Exception as exc:  # noqa: BLE001 - pluggy's validation errors, named
            if self.manager.is_registered(obj):
                self.manager.unregister(obj)
            raise PluginLoadError(f"plugin {name} ({spec.origin}) is not a valid pagemill plugin: {exc}") from None
        guard_plugin(self.manager, obj, name)
        self.specs.append(spec)
        module = obj if isinstance(obj, types.ModuleType) else inspect.getmodule(type(obj) if not inspect.isclass(obj) else obj)
        if module is not None:
            self._module_to_plugin[module.__name__] = name

    def _spec_named(self, name: str) -> PluginSpec | None:
        return next((spec for spec in self.specs if spec.name == name), None)

    def _already_has(self, obj: object) -> bool:
        """The very same module or object registered already (under whatever name)."""
        if not self.manager.is_registered(obj):
            return False
        logger.debug("plugin {} is loaded already", self.manager.get_name(obj))
        return True

    def _free_name_for(self, path: Path) -> str:
        """The file's stem, or the shortest tail of its path no other plugin is named."""
        parts = path.parts
        candidates = [path.stem] + ["/".join(parts[-count:]) for count in range(2, len(parts) + 1)]
        for candidate in candidates:
            if self._spec_named(candidate) is None and not self.manager.has_plugin(candidate):
                return candidate
        return str(path)  # taken too: _register names the clash

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


def _load_entry_point(spec: PluginSpec) -> Any:
    """An entry point again in a worker, by its value (``module`` or ``module:attribute``)."""
    entry_point = importlib.metadata.EntryPoint(spec.name, spec.ref, ENTRY_POINT_GROUP)
    try:
        return entry_point.load()
    except BaseException as exc:  # noqa: BLE001
        _reraise_interrupt(exc)
        raise PluginLoadError(f"plugin {spec.name} ({spec.ref}) failed to import: {_describe(exc)}") from None


def _why_unpicklable(obj: object) -> str:
    """What to do about a plugin object that cannot be pickled, by what stops it."""
    cls = obj if inspect.isclass(obj) else type(obj)
    if "<locals>" in getattr(cls, "__qualname__", ""):
        return ("its class is defined inside a function, where a worker process cannot find it by name; "
                "define the class at module level")
    return ("plugin objects travel pickled to every worker process, with every attribute they hold, and a lock, "
            "an open file, a connection or a thread cannot be; create such things in the worker, on first use in "
            "a hook, or pass a module or a plugin file instead")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) while importing"
    return f"{type(exc).__name__}: {exc}"


def _reraise_interrupt(exc: BaseException) -> None:
    """Ctrl-C while a plugin imports stays Ctrl-C; any other BaseException is the plugin's fault."""
    if isinstance(exc, KeyboardInterrupt):
        raise exc


@contextmanager
def _on_import_path(folder: str) -> Iterator[None]:
    """``folder`` on sys.path for the length of one import, then sys.path as it was. Last, so that
    a file in the folder never hides an installed module of the same name."""
    if not folder or folder in sys.path:
        yield
        return
    sys.path.append(folder)
    try:
        yield
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:  # the plugin took it off itself
            pass


def _import_module(module_name: str, plugin_name: str, search_path: str = "") -> tuple[Any, str]:
    """The module, and the folder it was found in when that is not on sys.path.

    Like ``python -m``, a module of the current folder is found even when the current folder is
    not on sys.path (a console script's is not); sys.path is left as it was.
    """
    try:
        with _on_import_path(search_path):
            return importlib.import_module(module_name), search_path
    except ModuleNotFoundError as exc:
        top = module_name.partition(".")[0]
        cwd = os.getcwd()
        if search_path or exc.name != top or cwd in sys.path or "" in sys.path:
            raise PluginLoadError(f"plugin {plugin_name} failed to import: {_describe(exc)}") from None
        return _import_module(module_name, plugin_name, cwd)
    except BaseException as exc:  # noqa: BLE001 - sys.exit() at import too
        _reraise_interrupt(exc)
        raise PluginLoadError(f"plugin {plugin_name} failed to import: {_describe(exc)}") from None


def module_name_for(file: Path) -> str:
    """The module name a plugin file is loaded under: unique per path, the same in every process."""
    digest = hashlib.sha1(str(file).encode("utf-8")).hexdigest()[:10]
    return f"pagemill_plugin_{file.stem}_{digest}"


def _import_path(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise PluginLoadError(f"plugin file {path} not found")
    module_name = module_name_for(file)
    if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) == str(file):
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"plugin file {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        # compiled from the source every time: no bytecode cache beside the user's file (nothing
        # written there), and none that a file rewritten within the same second could leave stale
        exec(compile(file.read_bytes(), str(file), "exec", dont_inherit=True), module.__dict__)
    except BaseException as exc:  # noqa: BLE001 - sys.exit() at import too
        del sys.modules[module_name]
        _reraise_interrupt(exc)
        raise PluginLoadError(f"plugin file {path} failed to import: {_describe(exc)}") from None
    return module
