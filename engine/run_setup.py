"""Before a run: the critical conditions found early, the ledger opened under the folder's lock, and
the fields the outputs will have."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from loguru import logger

from engine.config import EngineConfig
from engine.errors import ConfigError, CriticalError
from engine.ledger import LEDGER_NAME, Ledger
from engine.outlock import OutputLock
from engine.registry import PluginRegistry


def preflight(config: EngineConfig, registry: PluginRegistry) -> None:
    """Critical conditions found before any work: the plugins' checks (tesseract, languages), free
    disk, an output folder that can be written. The plugins go first, and the disk is measured on
    the nearest folder that exists, so a failed check leaves no output folder behind."""
    registry.hook.pagemill_preflight(config=config)
    if not config.out_dir:
        return
    out = Path(config.out_dir)
    existing = next((folder for folder in (out, *out.parents) if folder.exists()), Path("."))
    if not existing.is_dir():  # a usage error, as for `pagemill sample`: --out names a file
        raise ConfigError(f"--out {out}: {existing} is a file, not a folder")
    try:
        free_mb = shutil.disk_usage(existing).free / 2**20
    except OSError as exc:
        raise CriticalError(f"output folder {out} is not writable: {exc.strerror or exc}") from None
    if free_mb < config.min_free_disk_mb:
        raise CriticalError(
            f"only {free_mb:.0f} MB free on the disk of {out}; --min-free-disk is {config.min_free_disk_mb} MB"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".pagemill-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CriticalError(f"output folder {out} is not writable: {exc.strerror or exc}") from None


def open_ledger(config: EngineConfig) -> Ledger:
    """The run's ledger: in the output folder, taken for this run alone (the lock is released when
    the ledger is closed), or in memory without an output folder."""
    if not config.out_dir:
        return Ledger(None)
    path = Path(config.out_dir) / LEDGER_NAME
    logger.debug("ledger {}", path)
    lock = OutputLock(config.out_dir).acquire()
    try:
        return Ledger(path, lock=lock)
    except BaseException:
        lock.release()
        raise


def output_fields(registry: PluginRegistry, config: EngineConfig) -> list[str]:
    """The fields the plugins say they extract, built-in plugins first, each name once."""
    answers = registry.hook.pagemill_output_fields(config=config)  # the plugin registered last answers first
    return list(dict.fromkeys(name for names in reversed(answers) for name in (names or ())))
