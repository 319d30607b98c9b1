"""The options plugins declare (``pagemill_add_options``) as settings: each one's default and how to
read it from text (pagemill.toml and ``PAGEMILL_<OPTION>`` give strings), for the command line and
for the API alike.

A plugin gets the command's parser and may add its options to it directly or in an argument group
of its own; what it added is read from the parser's actions before and after its call, whatever
group they went to.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable

from engine.config import EngineConfig, OptionSpec, parse_bool
from engine.errors import PluginLoadError

PLUGIN_GROUP = "plugin options"  # where options a plugin adds to the parser itself are listed


def plugin_option_specs_of(registry: Any) -> dict[str, OptionSpec]:
    """The options the plugins of ``registry`` declare (``pagemill_add_options``), as the API
    reads them from the environment and pagemill.toml without a command line."""
    return add_plugin_options(registry, argparse.ArgumentParser(add_help=False))


def add_plugin_options(registry: Any, parser: argparse.ArgumentParser) -> dict[str, OptionSpec]:
    """Let each plugin add its options to ``parser``; returns each option's default and string
    reader, by ``dest``. The defaults on the parser become None, so that pagemill.toml and
    PAGEMILL_<NAME> are not hidden by a plugin's default (engine.config applies it below them)."""
    group = parser.add_argument_group(PLUGIN_GROUP)
    settings = {f.name for f in dataclasses.fields(EngineConfig)}
    added: list[argparse.Action] = []
    caller = registry.hook.pagemill_add_options
    for impl in reversed(caller.get_hookimpls()):  # pluggy's order: the plugin registered last first
        if impl.wrapper or impl.hookwrapper:
            continue
        before = len(parser._actions)
        impl.function(*[parser for _ in impl.argnames])  # its one argument, if it takes it
        mine = parser._actions[before:]
        for action in mine:
            if action.dest in settings:
                raise PluginLoadError(f"plugin {impl.plugin_name}: option {'/'.join(action.option_strings) or action.dest} "
                                      f"sets '{action.dest}', a pagemill setting; give it a dest of its own")
        added.extend(mine)
    loose = [action for action in added if action in parser._optionals._group_actions]
    for action in loose:  # added to the parser itself: listed under "plugin options" in --help
        parser._optionals._group_actions.remove(action)
        group._group_actions.append(action)
    return take_plugin_defaults(added)


def take_plugin_defaults(actions: list[argparse.Action]) -> dict[str, OptionSpec]:
    """Each plugin option's default and string reader, taken off its action: an option left unset
    is None, so that pagemill.toml and PAGEMILL_<NAME> are not hidden by the plugin's default."""
    specs: dict[str, OptionSpec] = {}
    for action in actions:
        if action.dest in (argparse.SUPPRESS, None) or isinstance(action, argparse._HelpAction):
            continue
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
