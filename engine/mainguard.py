"""Refuse to start workers from a script's top level when the workers would run that script again.

With the forkserver and spawn start methods every worker imports the parent's ``__main__`` module
(as ``__mp_main__``). A script that starts pagemill outside ``if __name__ == "__main__":`` starts
it again in each worker, where multiprocessing refuses, and the parent only sees workers dying
at start. The parent can tell beforehand: the call comes from the main module's top-level code,
on a line that no ``__name__ == "__main__"`` test guards.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import sys
from types import FrameType, ModuleType

from engine.errors import ConfigError

GUARD_MESSAGE = (
    'workers cannot start: the script that starts pagemill must guard its entry point with `if __name__ == "__main__":`'
)


def check_entry_point_guarded() -> None:
    """Raise ConfigError when called, at import time, from an unguarded line of the main script."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise ConfigError(GUARD_MESSAGE)  # a worker running the script again: the parent could not tell
    main = sys.modules.get("__main__")
    if main is None or not _reimported_by_workers(main):
        return
    path = os.path.abspath(main.__file__ or "")
    frame = _top_level_frame(main, path)
    if frame is None:
        return
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
    except (OSError, SyntaxError, ValueError):
        return  # cannot tell: let the workers try
    if not _guarded(tree, frame.f_lineno):
        raise ConfigError(f"{GUARD_MESSAGE} ({path}, line {frame.f_lineno})")


def _reimported_by_workers(main: ModuleType) -> bool:
    """What multiprocessing.spawn does: a module run by name is imported again unless it is a
    package's ``__main__``; a script is run again from its path; an interactive session is not."""
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if spec_name is not None and (spec_name == "__main__" or spec_name.endswith(".__main__")):
        return False
    return bool(getattr(main, "__file__", None))


def _top_level_frame(main: ModuleType, path: str) -> FrameType | None:
    """The frame of the main module's top-level code, when it is on this thread's stack."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "<module>" and frame.f_globals is main.__dict__ and os.path.abspath(code.co_filename) == path:
            return frame
        frame = frame.f_back
    return None


def _guarded(tree: ast.Module, line: int) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body:
            first, last = node.body[0].lineno, node.body[-1].end_lineno or node.body[-1].lineno
            if first <= line <= last:
                return True
    return False


def _is_main_test(test: ast.expr) -> bool:
    """A test that holds ``__name__ == "__main__"`` (either way round, also within ``and``/``or``)."""
    for node in ast.walk(test):
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.Eq, ast.In))):
            continue
        sides = [node.left, node.comparators[0]]
        if any(isinstance(side, ast.Name) and side.id == "__name__" for side in sides) and "__main__" in ast.dump(node):
            return True
    return False
