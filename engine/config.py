"""EngineConfig: every setting of a run, from defaults < pagemill.toml < PAGEMILL_* < CLI/API.

One dataclass holds the settings of the engine and of the built-in plugins; third-party plugins
read theirs from ``config.options``. ``EngineConfig.load()`` merges the sources in order, the
plugins' options included, and ``validate()`` raises :class:`engine.errors.ConfigError` with a
message naming the bad key. ``plugins`` is the one key that adds up instead: a plugin named in
the file, the environment or the arguments is loaded.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping


from engine.errors import ConfigError
from engine.records import PRIORITY_RANKS

ONE_SHOT = ("fresh", "retry_failed")  # apply to the run they are given for, never to a resume of it
NEVER_STORED = ("password",)  # kept out of the ledger: a resume reads it from its sources again
# tesseract's page segmentation modes that give text: 0 only detects orientation and script, and
# 2 (segmentation without OCR) is not implemented
PSM_MODES = (1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)


@dataclass(frozen=True)
class OptionSpec:
    """A plugin option as a config source sees it: its default and how to read it from a string."""

    default: Any = None
    convert: Callable[[str], Any] | None = None  # for PAGEMILL_<NAME>; None keeps the string


@dataclass(frozen=True)
class EngineConfig:
    """Every setting of a run.

    ``EngineConfig(...)`` holds exactly what it is given, over the defaults: it reads neither
    pagemill.toml nor ``PAGEMILL_*`` variables, so a program states its whole configuration (an
    Engine adds the defaults of the options its plugins declare, for the options not given).
    :meth:`EngineConfig.load` — and ``Engine(**settings)``, which calls it — reads
    ``./pagemill.toml`` (or the file named) and the environment under the values given, as the
    ``pagemill`` command does.
    """

    # --- the run
    out_dir: str | None = None
    workers: str = "auto"  # "auto", "N" or "MIN:MAX"
    priority: str = "normal"
    mp_context: str = "forkserver"  # "forkserver", "spawn" or "fork"
    executor: str | None = None  # "local", "dask", "dask-local"; None: "dask" with a scheduler address, else "local"
    scheduler_address: str | None = None  # tcp://HOST:8786 for executor "dask" (alone, it implies "dask")
    fresh: bool = False
    retry_failed: bool = False
    # --- the built-in stages
    dpi: int = 300
    lang: str = "eng"
    psm: int = 6
    force_ocr: bool = False
    template: str = "truck_ticket"
    review_below: float = 0.6
    password: str | None = None
    max_image_pixels: int = 178_956_970
    # --- limits, timeouts and retries
    page_timeout: float = 300.0
    grace: float = 30.0
    max_attempts: int = 3
    retry_base_delay: float = 0.5
    retry_factor: float = 2.0
    retry_max_delay: float = 30.0
    retry_jitter: float = 0.25
    breaker_threshold: int = 5
    breaker_reset_seconds: float = 10.0
    breaker_give_up: float = 600.0  # seconds a breaker must have been open before the pages it holds fail
    max_pages_per_worker: int = 1000
    max_worker_rss_mb: int = 1024
    min_free_memory_mb: int = 512
    min_free_disk_mb: int = 100
    # --- plugins
    plugins: tuple[str, ...] = ()  # paths to .py files or importable module names
    load_entry_points: bool = True
    sinks: tuple[str, ...] = ()  # where finished pages also go as the run goes: sqlite:///path.db
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a tuple-valued key takes one value as a one-item tuple: sinks="sqlite:///x.db", plugins="p.py"
        for spec in dataclasses.fields(self):
            if str(spec.type).startswith("tuple"):
                value = getattr(self, spec.name)
                if isinstance(value, (str, os.PathLike)):
                    object.__setattr__(self, spec.name, (os.fspath(value),))
                elif value is None:
                    object.__setattr__(self, spec.name, ())
                elif not isinstance(value, tuple):
                    object.__setattr__(self, spec.name, tuple(value))
        if self.executor is None:  # a scheduler address alone says where pages run
            object.__setattr__(self, "executor", "dask" if self.scheduler_address else "local")

    # ------------------------------------------------------------------ sources
    @classmethod
    def load(
        cls,
        config_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        plugin_options: Mapping[str, OptionSpec] | None = None,
        **overrides: Any,
    ) -> EngineConfig:
        """Merge defaults < config file < PAGEMILL_* environment < ``overrides`` and validate.

        Without ``config_file``, ``./pagemill.toml`` is read when it exists. Overrides whose value
        is ``None`` are ignored, so CLI flags left unset do not hide the file or environment.
        ``plugin_options`` names the options plugins declare: their defaults come first and
        ``PAGEMILL_<NAME>`` sets them from the environment.
        """
        layers = read_sources(config_file, environ, plugin_options)
        if plugin_options is not None:  # the options are known: anything else in the file is a typo
            layers[0] = checked_file_keys(layers[0], config_path(config_file), plugin_options)
        layers.append({k: v for k, v in overrides.items() if v is not None})
        return cls.from_layers(layers, plugin_options)

    @classmethod
    def from_layers(
        cls, layers: Iterable[Mapping[str, Any]], plugin_options: Mapping[str, OptionSpec] | None = None
    ) -> EngineConfig:
        """Merge mappings, a later one winning, engine keys and plugin options alike (an
        ``options`` table and unknown keys are both plugin options); ``plugins`` add up."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        merged: dict[str, Any] = {}
        options = {name: spec.default for name, spec in (plugin_options or {}).items() if spec.default is not None}
        plugins: list[str] = []
        for layer in layers:
            for key, value in layer.items():
                name = key.replace("-", "_")
                if name == "options":
                    if not isinstance(value, Mapping):
                        raise ConfigError(f"options must be a table of plugin options, not {value!r}")
                    options.update(value)
                elif name == "plugins":
                    refs = _coerce(name, known[name], value)
                    plugins.extend(ref for ref in refs if ref not in plugins)
                elif name in known:
                    merged[name] = value
                else:
                    options[name] = value
            _executor_pair(merged, layer)
        merged["options"] = options
        merged["plugins"] = tuple(plugins)
        return cls.from_mapping(merged)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EngineConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        options: dict[str, Any] = dict(values.get("options") or {})
        for key, value in values.items():
            name = key.replace("-", "_")
            if name == "options":
                continue
            if name not in known:
                options[name] = value
                continue
            kwargs[name] = _coerce(name, known[name], value)
        kwargs["options"] = options
        config = cls(**kwargs)
        config.validate()
        return config

    def with_option_defaults(self, plugin_options: Mapping[str, OptionSpec]) -> EngineConfig:
        """This config with each declared plugin option it leaves unset (absent or None) at its default."""
        missing = {name: spec.default for name, spec in plugin_options.items()
                   if spec.default is not None and self.options.get(name) is None}
        if not missing:
            return self
        return dataclasses.replace(self, options={**self.options, **missing})

    def replace(self, **changes: Any) -> EngineConfig:
        """This config with ``changes`` over it; an executor or a scheduler address given alone
        wins over the other as ``from_layers`` says."""
        values = {"executor": self.executor, "scheduler_address": self.scheduler_address}
        _executor_pair(values, changes)
        config = dataclasses.replace(self, **{**values, **changes})
        config.validate()
        return config

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy, stored in the ledger so that ``pagemill resume`` can reuse it.

        The password is never stored; nor are ``fresh`` and ``retry_failed``, which apply to the
        run they are given for: a resume goes on from where that run stopped."""
        data = dataclasses.asdict(self)
        data["plugins"] = list(self.plugins)
        for name in NEVER_STORED + ONE_SHOT:
            data.pop(name, None)
        return data

    # --------------------------------------------------------------- validation
    def validate(self) -> None:
        self.worker_bounds()  # raises on a bad value
        if self.priority not in PRIORITY_RANKS:
            raise ConfigError(f"priority must be one of {', '.join(PRIORITY_RANKS)}, not {self.priority!r}")
        if self.mp_context not in ("forkserver", "spawn", "fork"):
            raise ConfigError(f"mp_context must be forkserver, spawn or fork, not {self.mp_context!r}")
        if self.executor not in ("local", "dask", "dask-local"):
            raise ConfigError(f"executor must be local, dask or dask-local, not {self.executor!r}")
        if self.executor == "dask" and not self.scheduler_address:
            raise ConfigError("executor 'dask' needs a scheduler address (--scheduler tcp://HOST:8786)")
        if self.scheduler_address and self.executor != "dask":
            raise ConfigError(f"scheduler address {self.scheduler_address} is for executor 'dask', not "
                              f"{self.executor!r}: give the address alone (--scheduler implies --executor dask) "
                              f"or leave it out")
        if not 30 <= self.dpi <= 1200:
            raise ConfigError(f"dpi must be between 30 and 1200, not {self.dpi}")
        if self.psm not in PSM_MODES:
            raise ConfigError(f"psm must be 1 or 3 to 13, not {self.psm!r} (psm 0 only detects orientation and "
                              f"psm 2 is not implemented by tesseract: neither gives text)")
        if not 0.0 <= self.review_below <= 1.0:
            raise ConfigError(f"review_below must be between 0 and 1, not {self.review_below}")
        for name in ("page_timeout", "retry_base_delay", "retry_max_delay"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")
        if self.grace < 0:  # 0: pages in flight are not waited for on cancel
            raise ConfigError(f"grace must be 0 or more, not {self.grace}")
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.retry_factor < 1:
            raise ConfigError(f"retry_factor must be at least 1, not {self.retry_factor}")
        if not 0 <= self.retry_jitter <= 1:
            raise ConfigError(f"retry_jitter must be between 0 and 1, not {self.retry_jitter}")
        if self.breaker_threshold < 1:
            raise ConfigError(f"breaker_threshold must be at least 1, not {self.breaker_threshold}")
        if self.breaker_give_up < 0:
            raise ConfigError(f"breaker_give_up must be 0 or more, not {self.breaker_give_up}")
        if self.max_pages_per_worker < 0:
            raise ConfigError("max_pages_per_worker must be 0 (no limit) or more")

    def worker_bounds(self) -> tuple[int, int]:
        """(min, max) workers: "auto" scales between 1 and the CPU count, "N" fixes N."""
        cpus = os.cpu_count() or 1
        text = str(self.workers).strip().lower()
        try:
            if text == "auto":
                return 1, cpus
            if ":" in text:
                low, high = (int(part) for part in text.split(":", 1))
            else:
                low = high = int(text)
        except ValueError:
            raise ConfigError(f"workers must be 'auto', N or MIN:MAX, not {self.workers!r}") from None
        if low < 1 or high < low:
            raise ConfigError(f"workers must be at least 1 and MIN <= MAX, not {self.workers!r}")
        return low, high


def _executor_pair(merged: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """``executor`` and ``scheduler_address`` go together: a layer that sets one of them alone
    overrides the other from the layers under it. A scheduler address alone clears a lower
    executor (the address implies ``dask``); an executor other than ``dask`` alone clears a lower
    address (``pagemill resume DIR --executor local`` runs a Dask run's rest here). Both in one
    layer, disagreeing, are left for ``validate()`` to refuse."""
    names = {key.replace("-", "_"): value for key, value in layer.items() if value is not None}
    if names.get("scheduler_address") and "executor" not in names:
        merged["executor"] = None
    elif "executor" in names and "scheduler_address" not in names and names["executor"] != "dask":
        merged["scheduler_address"] = None


def parse_bool(value: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case), as environment variables write them."""
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


def _coerce(name: str, spec: dataclasses.Field[Any], value: Any) -> Any:
    """Turn strings from the environment (and TOML values) into the field's type."""
    kind = str(spec.type)
    try:
        if kind.startswith("bool"):
            return parse_bool(value) if isinstance(value, str) else bool(value)
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("tuple"):
            if isinstance(value, str):
                return tuple(part for part in (p.strip() for p in value.split(",")) if part)
            return tuple(value)
        if kind.startswith("str") and not kind.startswith("str |"):
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot use {value!r} as {kind}") from None
    return value


# the readers of the file and the environment, kept apart; imported last (they read EngineConfig's fields)
from engine.config_sources import CONFIG_FILE_NAME, ENV_PREFIX, checked_file_keys, config_path, read_sources  # noqa: E402,F401
