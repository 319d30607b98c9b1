"""Circuit breakers applied to single plugin calls: the worker's gate and the parent's keeper.

A worker numbers its stage hook implementations once, at start (its *call table*: index →
``(plugin, hook)``, the same in every worker of a pool since they load the same plugins in the
same order) and sends the table with its ready message. Each implementation is wrapped by
:class:`CallGate`, which for every call:

- fails fast with :class:`engine.breakers.CircuitOpenError` (transient) when the task says that
  call is blocked (its breaker is open or half-open and this task is not its trial), so a page
  that never calls that plugin is not held back;
- writes the call's index to the progress slot (``PLUGIN_NOW``) while it runs, so the parent
  knows whose hook was running when a page timed out or its worker died;
- notes, as bits of an int, which calls returned, and which call raised.

The parent (:class:`BreakerGates`) puts the blocked bits and the trial bits on each task it sends,
feeds the answers' bits to the breakers (a successful call is a success of exactly that breaker),
and keeps the pages held back by an open breaker: all go back to the queue when it closes, and
one, carrying the trial, when it half-opens — a page that has not failed before when one is held,
so that a page failing for its own reasons does not keep the breaker open. Nothing held is lost:
the run is not finished while any page is held, and the pages of a breaker that gives up
(engine.breakers) are taken out to end as failed records (``take_held``).
"""

from __future__ import annotations

import functools
from collections import deque
from typing import Any, Callable, Iterable

from engine.breakers import CLOSED, HALF_OPEN, OPEN, BreakerBoard, CircuitBreaker, CircuitOpenError
from engine.pagequeue import Task

GATED_HOOKS = ("pagemill_ingest", "pagemill_load_page", "pagemill_ocr", "pagemill_extract", "pagemill_validate")
# hooks whose results end up in the answer: what they returned is kept for the task in hand, so an
# answer that cannot be sent names the plugin that returned the part at fault (engine.wire)
ANSWER_HOOKS = frozenset({"pagemill_ingest", "pagemill_ocr", "pagemill_extract", "pagemill_validate"})

Key = tuple[str, str]  # (plugin, hook)


class CallGate:
    """The worker's side: wraps every stage hook implementation of a registry."""

    def __init__(self, registry: Any, writer: Any = None) -> None:
        self.keys: list[Key] = []
        self.blocked = 0  # bits of calls to fail fast for the task in hand
        self.called = 0  # bits of calls that returned, for the task in hand
        self.failed = -1  # index of the call that raised, -1 when none
        self.returned: list[tuple[int, Any]] = []  # (call, value) of the answer hooks, for the task in hand
        self._writer = writer
        for hook_name in GATED_HOOKS:
            caller = getattr(registry.hook, hook_name, None)
            if caller is None:
                continue
            for impl in caller.get_hookimpls():
                if impl.wrapper or impl.hookwrapper:
                    continue
                index = len(self.keys)
                self.keys.append((impl.plugin_name, hook_name))
                impl.function = self._wrap(impl.function, index)

    def begin(self, blocked: int, trial: int) -> None:
        """A task starts: these calls fail fast (except its trials)."""
        self.blocked = blocked & ~trial
        self.called = 0
        self.failed = -1
        self.returned = []

    def owner_of(self, part: Any) -> int | None:
        """The call (its index) that returned ``part``, or a list or record holding it, for the
        task in hand; None when none did."""
        for index, value in self.returned:
            if value is part or (isinstance(value, (list, tuple)) and any(item is part for item in value)) \
                    or any(item is part for item in getattr(value, "__dict__", {}).values()):
                return index
        return None

    def _wrap(self, function: Callable[..., Any], index: int) -> Callable[..., Any]:
        bit = 1 << index
        plugin, hook = self.keys[index]
        keep = hook in ANSWER_HOOKS
        gate = self

        @functools.wraps(function)
        def gated(*args: Any, **kwargs: Any) -> Any:
            if gate.blocked & bit:
                gate.failed = index
                raise CircuitOpenError(f"circuit breaker {plugin}.{hook} is open")
            writer = gate._writer
            if writer is not None:
                writer.plugin_started(index)
            try:
                value = function(*args, **kwargs)
            except BaseException:
                gate.failed = index
                raise
            finally:
                if writer is not None:
                    writer.plugin_finished()
            gate.called |= bit
            if keep and value is not None:
                gate.returned.append((index, value))
            return value

        return gated


def _bits(mask: int) -> Iterable[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class BreakerGates:
    """The parent's side: blocked and trial bits for tasks, breaker feeding, held pages."""

    def __init__(self, board: BreakerBoard) -> None:
        self.board = board
        self.keys: list[Key] | None = None  # the workers' call table; None: calls cannot be gated
        self._index: dict[Key, int] = {}
        self._held: dict[Key, deque[Task]] = {}
        self.held_count = 0

    @property
    def precise(self) -> bool:
        return self.keys is not None

    def learn(self, keys: list[Key]) -> None:
        """The call table from a worker's ready message (the first one is kept)."""
        if self.keys is None:
            self.keys = [tuple(key) for key in keys]  # type: ignore[misc]
            self._index = {key: index for index, key in enumerate(self.keys)}

    def key_of(self, index: int) -> Key | None:
        if self.keys is None or not 0 <= index < len(self.keys):
            return None
        return self.keys[index]

    def breaker(self, key: Key) -> CircuitBreaker:
        return self.board.get(*key)

    def blocked_mask(self) -> int:
        """Bits of the calls whose breaker is not closed."""
        mask = 0
        for key, breaker in self.board.breakers.items():
            if breaker.state != CLOSED and key in self._index:
                mask |= 1 << self._index[key]
        return mask

    # ----------------------------------------------------------------- answers
    def settle(self, task: Task, called: int, failed_key: Key | None, transient: bool) -> None:
        """A task came back: its successful calls close their breakers (an open one waits for
        its pause) and reset their counts; a trial it did not use is handed back."""
        if called and self.board.breakers and self.keys is not None:
            for index in _bits(called):
                breaker = self.board.breakers.get(self.keys[index])
                if breaker is not None and breaker.state != OPEN and (breaker.state == HALF_OPEN or breaker.failures):
                    breaker.record_success()
        if task.trial:
            for index in _bits(task.trial & ~called):
                key = self.keys[index] if self.keys is not None else None
                if key is not None and not (transient and key == failed_key):
                    self.board.get(*key).release_trial()
            task.trial = 0

    def failure(self, key: Key, trial: bool | None = None) -> None:
        """A transient failure (or a timeout or death) in this plugin's hook; ``trial``: whether
        the failing task carried that breaker's trial (see :meth:`is_trial`)."""
        self.board.get(*key).record_failure(trial)

    def is_trial(self, task: Task, key: Key | None) -> bool | None:
        """Whether ``task`` carries the trial of ``key``'s breaker (None: calls are not gated)."""
        if key is None or key not in self._index:
            return None
        return bool(task.trial & (1 << self._index[key]))

    def first_answer(self, called: int, hook: str) -> str | None:
        """The plugin whose ``hook`` answered a firstresult call: of the implementations called,
        the one called last, which is the first in the call table (pluggy calls from the end)."""
        if self.keys is None:
            return None
        for index in sorted(_bits(called)):
            if index < len(self.keys) and self.keys[index][1] == hook:
                return self.keys[index][0]
        return None

    # -------------------------------------------------------------------- held
    def hold(self, key: Key, task: Task) -> None:
        """Keep a page back until the breaker of ``key`` lets it go."""
        self._held.setdefault(key, deque()).append(task)
        self.held_count += 1

    def release(self, fresh: Callable[[Task], bool] = lambda task: True) -> list[Task]:
        """Held pages that may go now: all of a closed breaker's, one (the trial) of a half-open
        one's: the first held that is ``fresh`` (has not failed before), else the first held."""
        released: list[Task] = []
        for key in [key for key, tasks in self._held.items() if tasks]:
            breaker = self.board.get(*key)
            tasks = self._held[key]
            if breaker.state == CLOSED:
                released.extend(tasks)
                tasks.clear()
            elif key in self._index and breaker.allow():
                task = next((candidate for candidate in tasks if fresh(candidate)), tasks[0])
                tasks.remove(task)
                task.trial |= 1 << self._index[key]
                released.append(task)
        self.held_count -= len(released)
        return released

    def held_for(self, key: Key) -> int:
        return len(self._held.get(key, ()))

    def take_held(self, key: Key) -> list[Task]:
        """Every page held back by ``key``'s breaker, taken out (it gave up on them)."""
        tasks = list(self._held.pop(key, ()))
        self.held_count -= len(tasks)
        return tasks

    def next_release(self) -> float | None:
        """The clock time at which a held page may go next (None: nothing held)."""
        times = []
        for key, tasks in self._held.items():
            if tasks:
                free = self.board.get(*key).free_at()
                times.append(self.board.clock() if free is None else free)
        return min(times) if times else None

    def remove_where(self, doomed: Callable[[Task], bool]) -> list[Task]:
        removed: list[Task] = []
        for key, tasks in self._held.items():
            removed.extend(task for task in tasks if doomed(task))
            self._held[key] = deque(task for task in tasks if not doomed(task))
        self.held_count -= len(removed)
        return removed


__all__ = ["GATED_HOOKS", "BreakerGates", "CallGate", "CircuitOpenError"]
