"""The options plugins declare (``pagemill_add_options``) as settings: each one's default and how to
read it from text (pagemill.toml and ``PAGEMILL_<OPTION>`` give strings), for the command line and
for the API alike."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from engine.config import OptionSpec, parse_bool


def plugin_option_specs_of(registry: Any) -> dict[str, OptionSpec]:
    """The options the plugins of ``registry`` declare (``pagemill_add_options``), as the API
    reads them from the environment and pagemill.toml without a command line."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("plugin options")
    registry.hook.pagemill_add_options(parser=group)
    return take_plugin_defaults(group)


def take_plugin_defaults(group: argparse._ArgumentGroup) -> dict[str, OptionSpec]:
    """Each plugin option's default and string reader, taken off the parser: an option left unset
    is None, so that pagemill.toml and PAGEMILL_<NAME> are not hidden by the plugin's default."""
    specs: dict[str, OptionSpec] = {}
    for action in group._group_actions:
        specs[action.dest] = OptionSpec(action.default, _string_reader(action))
        action.default = None
    return specs


def _string_reader(action: argparse.Action) -> Callable[[str], Any] | None:
    if action.nargs == 0 and isinstance(action.const, bool):  # store_true / store_false
        return parse_bool
    convert = action.type if callable(action.type) else None
    if isinstance(action, argparse._AppendAction):
        return lambda text: [convert(part) if convert else part for part in (p.strip() for p in text.split(",")) if part]
    return convert
