"""Each plugin's hook implementations, guarded where they are registered.

- What a hook returns is checked against the contract (engine.hookspecs), so a plugin that returns
  a dict where a list of Field is due fails the page with one line naming it
  (:class:`PluginResultError`, permanent) instead of breaking the code that merges the results.
  The check runs inside the call: engine.gates wraps the guarded function, so the failure is that
  plugin call's own, as a raise would be.
- An exception raised by a parent-side hook (a check across pages, a sink, a run hook) becomes a
  :class:`PluginError` naming the plugin and the hook; the option hook's errors are load errors
  (a flag that clashes with another is bad usage). Errors pagemill defines pass unchanged: a
  plugin raises CriticalError on purpose, with its own message.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Mapping
from typing import Any, Callable

from engine.errors import PagemillError, PluginError, PluginLoadError, PluginResultError
from engine.records import Field, Issue, OcrResult, PageContent, PageTask

# hook -> (the type of its result, or of each item of its list; whether a list is due)
RESULTS: dict[str, tuple[type, bool]] = {
    "pagemill_ingest": (PageTask, True),
    "pagemill_load_page": (PageContent, False),
    "pagemill_ocr": (OcrResult, False),
    "pagemill_extract": (Field, True),
    "pagemill_validate": (Issue, True),
    "pagemill_cross_check": (Issue, True),
    "pagemill_output_fields": (str, True),
}
PARENT_HOOKS = frozenset({
    "pagemill_add_options", "pagemill_preflight", "pagemill_output_fields", "pagemill_cross_check",
    "pagemill_page_done", "pagemill_page_amended", "pagemill_run_started", "pagemill_run_finished",
})


def guard_plugin(manager: Any, plugin: object, name: str) -> None:
    """Guard every hook implementation of ``plugin`` (registered in ``manager`` as ``name``)."""
    for caller in manager.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper):
                impl.function = guarded(impl.function, name, caller.name)


def guarded(function: Callable[..., Any], plugin: str, hook: str) -> Callable[..., Any]:
    expected = RESULTS.get(hook)
    parent = hook in PARENT_HOOKS
    if expected is None and not parent:
        return function
    item_type, is_list = expected if expected is not None else (object, False)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            value = function(*args, **kwargs)
        except PagemillError:
            raise
        except Exception as exc:
            if not parent:
                raise  # a stage's error is classified and retried (engine.pipeline)
            raise _named(exc, plugin, hook) from exc
        if expected is None or value is None:
            return value
        try:
            return checked(value, item_type, is_list, plugin, hook)
        except PluginResultError as exc:
            if parent:  # no page to fail: the run stops, naming the plugin
                raise PluginError(str(exc)) from None
            raise

    return call


def checked(value: Any, item_type: type, is_list: bool, plugin: str, hook: str) -> Any:
    """``value`` when it is what ``hook`` must return (a list, for any iterable of the right items)."""
    if not is_list:
        if isinstance(value, item_type):
            return value
        raise _wrong(plugin, hook, type(value).__name__, f"{item_type.__name__} or None")
    wanted = f"a list of {item_type.__name__}"
    if isinstance(value, (str, bytes, Mapping, item_type)) or not hasattr(value, "__iter__"):
        raise _wrong(plugin, hook, type(value).__name__, wanted)
    items = value if isinstance(value, (list, tuple)) else list(value)
    for item in items:
        if not isinstance(item, item_type):
            raise _wrong(plugin, hook, f"a {type(value).__name__} holding {type(item).__name__}", wanted)
    return items


def _wrong(plugin: str, hook: str, got: str, wanted: str) -> PluginResultError:
    return PluginResultError(f"plugin {plugin}: {hook} returned {got}, expected {wanted}", plugin, hook)


def _named(exc: Exception, plugin: str, hook: str) -> PagemillError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if hook == "pagemill_add_options":
        if isinstance(exc, argparse.ArgumentError):
            return PluginLoadError(f"plugin {plugin}: an option clashes with an option of pagemill or of another "
                                   f"plugin ({text}); rename it")
        return PluginLoadError(f"plugin {plugin}: {hook} raised {what}")
    return PluginError(f"plugin {plugin}: {hook} raised {what}")


__all__ = ["guard_plugin", "guarded", "checked", "PARENT_HOOKS", "RESULTS"]
