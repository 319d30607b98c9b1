"""Small helpers shared by the benchmarks: tables, archives, timing."""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from engine.bench import machine
from engine.bench import markdown_table as table
from plugins.noop import write_noop_document

__all__ = ["Stopwatch", "header", "noop_archive", "quiet_logs", "table", "verdict"]


def header(title: str) -> str:
    facts = machine()
    return f"## {title}\n{facts['date']} · {facts['cpu']} · {facts['cpus']} CPUs · Python {facts['python']}"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


@contextmanager
def noop_archive(pages: int, per_document: int = 10) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-") as folder:
        for start in range(0, pages, per_document):
            write_noop_document(Path(folder) / f"doc{start:06d}.noop", min(per_document, pages - start))
        yield Path(folder)


class Stopwatch:
    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def quiet_logs(level: str = "WARNING") -> None:
    """The benchmarks print tables; the engine's own log lines only from warnings up."""
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=level, format="{level: <7} {message}")
