"""The sources of a config under the arguments: the config file (``pagemill.toml``, or the one
named) and the ``PAGEMILL_*`` environment, each read into a plain mapping for
:meth:`engine.config.EngineConfig.from_layers`; the file's unknown keys warned with the nearest
known name, plugin options converted by their own readers."""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from loguru import logger

from engine.errors import ConfigError

ENV_PREFIX = "PAGEMILL_"
CONFIG_FILE_NAME = "pagemill.toml"


def _setting_names() -> set[str]:
    from engine.config import EngineConfig

    return {f.name for f in dataclasses.fields(EngineConfig)}


def read_sources(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    plugin_options: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The config file's values and the environment's, in that order (lowest first).

    Without ``config_file``, ``./pagemill.toml`` is read when it exists; a named file that does
    not exist is a ConfigError. The environment gives every ``PAGEMILL_<FIELD>`` and the
    ``PAGEMILL_<NAME>`` of each name in ``plugin_options`` (converted when it says how).
    """
    path = config_path(config_file)
    if config_file and not path.is_file():
        raise ConfigError(f"config file {path} not found")
    from_file = _read_toml(path) if path.is_file() else {}
    from_env = _read_env(os.environ if environ is None else environ, plugin_options or {})
    return [from_file, from_env]


def config_path(config_file: str | os.PathLike[str] | None) -> Path:
    """The config file read: the one named, else ./pagemill.toml."""
    return Path(config_file) if config_file else Path(CONFIG_FILE_NAME)


def checked_file_keys(values: Mapping[str, Any], path: Path, plugin_options: Mapping[str, Any]) -> dict[str, Any]:
    """The config file's values with its plugin options read with their own type (a value that
    does not fit is a ConfigError naming key and file); a warning for each key that is neither a
    setting nor a declared plugin option, with the nearest known name."""
    settings = _setting_names()
    known = sorted((settings - {"options"}) | set(plugin_options))
    checked: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name == "options" and isinstance(value, Mapping):
            checked[key] = {option: _file_option(path, f"options.{option}", option, item, plugin_options, known)
                            for option, item in value.items()}
        elif name in settings:
            checked[key] = value
        else:
            checked[key] = _file_option(path, key, name, value, plugin_options, known)
    return checked


def _file_option(path: Path, key: str, name: str, value: Any, plugin_options: Mapping[str, Any],
                 known: list[str]) -> Any:
    spec = plugin_options.get(name)
    if spec is None:
        near = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        logger.warning("{}: unknown key '{}'{}", path, key, hint)
        return value
    if spec.convert is None:
        return value
    text = value if isinstance(value, str) else _as_text(value)
    try:
        return spec.convert(text)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {key}: cannot use {value!r} ({exc})") from None


def _as_text(value: Any) -> str:
    """A TOML value as PAGEMILL_<NAME> would spell it, for the option's string reader."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_as_text(item) for item in value)
    return str(value)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    section = data.get("pagemill", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [pagemill] must be a table")
    return dict(section)


def _read_env(environ: Mapping[str, str], plugin_options: Mapping[str, Any]) -> dict[str, Any]:
    known = _setting_names() - {"options"}
    values: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in known:
            values[name] = value
        elif name in plugin_options:
            options[name] = _convert_option(key, value, plugin_options[name])
    if options:
        values["options"] = options
    return values


def _convert_option(variable: str, value: str, spec: Any) -> Any:
    convert = getattr(spec, "convert", None)
    if convert is None:
        return value
    try:
        return convert(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{variable}: cannot use {value!r} ({exc})") from None
