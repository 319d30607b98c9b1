"""Finding the documents of a run: files, folders searched recursively, or ``-`` for stdin."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from loguru import logger

from engine.errors import ConfigError
from engine.records import Document

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})


def check_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Fail early, before any work, on an input that does not exist (a usage error)."""
    checked = []
    for item in inputs:
        text = os.fspath(item)
        if text != "-" and not Path(text).exists():
            raise ConfigError(f"input not found: {text}")
        checked.append(text)
    if not checked:
        raise ConfigError("no input given")
    return checked


def iter_paths(inputs: Iterable[str], exclude: Path | None = None, stdin: TextIO | None = None) -> Iterator[Path]:
    """Each document path once, in a stable order: files as given, folders sorted and recursive.

    Every file counts, whatever its name: one that is neither a PDF nor an image the plugins read
    becomes one clear error for that file, never a silent skip. Hidden files and folders (names
    starting with a dot) and anything under ``exclude`` (the output folder) are skipped.
    """
    seen: set[Path] = set()
    excluded = exclude.resolve() if exclude else None
    for item in inputs:
        if item == "-":
            stream = stdin or sys.stdin
            candidates: Iterable[Path] = (Path(line.strip()) for line in stream if line.strip())
        elif Path(item).is_dir():
            candidates = _walk(Path(item), excluded)
        else:
            candidates = [Path(item)]
        for path in candidates:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            yield path


def _walk(folder: Path, excluded: Path | None) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (excluded is None or (root_path / d).resolve() != excluded))
        for name in sorted(files):
            if not name.startswith("."):
                yield root_path / name


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def iter_documents(
    inputs: Iterable[str], priority: str = "normal", exclude: Path | None = None, stdin: TextIO | None = None
) -> Iterator[Document]:
    """Documents with their content hash, read lazily as the run needs them."""
    for path in iter_paths(inputs, exclude, stdin):
        try:
            size = path.stat().st_size
            digest = sha256_of(path)
        except OSError as exc:
            logger.error("{}: cannot read: {}", path, exc.strerror or exc)
            continue
        kind = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "pdf"
        yield Document(path=str(path), sha256=digest, size=size, priority=priority, kind=kind)  # type: ignore[arg-type]
