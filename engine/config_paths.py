"""The settings that name files, made absolute when a run is stored, so that ``pagemill resume
DIR`` finds the same files from any working directory.

A relative path means the working directory of the run it was given to (on the command line, in
pagemill.toml or a ``--config`` file, in ``PAGEMILL_*``). The settings that may name a file are
``template`` (a bundled template's name is left as it is), ``plugins`` (an importable module name,
``package.module``, is left as it is) and ``sinks`` (``sqlite:///path.db``). The rules for telling
a path from a name are kept here alone: :func:`plugins.template_loader.template_path` and
:meth:`engine.registry.PluginRegistry.load_ref` ask the same functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

SQLITE_URL = "sqlite:///"
PATH_KEYS = ("template", "plugins", "sinks")


def is_template_path(text: str) -> bool:
    """Whether ``--template`` names a file rather than a bundled template."""
    text = text.strip()
    return text.endswith(".toml") or "/" in text or os.sep in text


def is_plugin_path(ref: str, cwd: str | None = None) -> bool:
    """Whether ``--plugin`` names a file rather than an importable module."""
    return ref.endswith(".py") or "/" in ref or os.sep in ref or Path(cwd or ".", ref).is_file()


def absolute_path(path: str, cwd: str) -> str:
    """``path`` (``~`` expanded) as an absolute, normalized path, relative to ``cwd``."""
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def absolute_sink(url: str, cwd: str) -> str:
    """A ``sqlite:///path.db`` sink with its path absolute (``sqlite:////abs/path.db``)."""
    if not url.startswith(SQLITE_URL):
        return url  # refused with its own message when the sink is opened
    path = url[len(SQLITE_URL):]
    if not path or path == ":memory:":
        return url
    return SQLITE_URL + absolute_path(path, cwd)


def with_absolute_paths(settings: Mapping[str, Any], cwd: str | None = None) -> dict[str, Any]:
    """A copy of ``settings`` (a config snapshot) with the paths it names made absolute."""
    here = cwd or os.getcwd()
    stored = dict(settings)
    template = stored.get("template")
    if isinstance(template, str) and is_template_path(template):
        stored["template"] = absolute_path(template.strip(), here)
    if stored.get("plugins"):
        stored["plugins"] = [absolute_path(ref, here) if is_plugin_path(ref, here) else ref for ref in stored["plugins"]]
    if stored.get("sinks"):
        stored["sinks"] = [absolute_sink(url, here) for url in stored["sinks"]]
    return stored


__all__ = ["PATH_KEYS", "absolute_path", "is_plugin_path", "is_template_path", "with_absolute_paths"]
