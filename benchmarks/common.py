"""Small helpers shared by the benchmarks: tables, archives, timing."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Iterator, Sequence

from plugins.noop import write_noop_document


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(title: str) -> str:
    return f"## {title}\n{date.today().isoformat()} · {cpu_model()} · {os.cpu_count()} CPUs · Python {platform.python_version()}"


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in columns]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


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
