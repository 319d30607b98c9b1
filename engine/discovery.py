"""Finding the documents of a run: files, folders searched recursively, or ``-`` for stdin.

A path listed on stdin is treated as one given on the command line: a folder is searched, a
file is a document. A listed path that cannot be read (missing, no permission) still becomes a
Document, keyed by its path instead of its content (:func:`unread_key`): opening it in a worker
fails, so the run records one ``failed`` page-0 record naming it and ends partial.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import os
import stat
import sys
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from loguru import logger

from engine.errors import ConfigError
from engine.records import Document

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
UNREAD_PREFIX = "unread:"
FOLDER_WINDOW = 64  # files of a folder looked at ahead, so that the larger ones are read first


def check_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Fail early, before any work, on an input that does not exist or on inputs that hold no
    document at all (both usage errors). ``-`` (stdin) is checked by whoever owns stdin."""
    checked = []
    for item in inputs:
        text = os.fspath(item)
        if text != "-" and not Path(text).exists():
            raise ConfigError(f"input not found: {text}")
        checked.append(text)
    if not checked:
        raise ConfigError("no input given")
    if all(text != "-" and Path(text).is_dir() and not _holds_a_document(Path(text)) for text in checked):
        raise ConfigError(f"no documents found in {', '.join(checked)}")
    return checked


def _holds_a_document(folder: Path) -> bool:
    return next(iter(_walk(folder, None, [0])), None) is not None


def iter_paths(inputs: Iterable[str], exclude: Path | None = None, stdin: TextIO | None = None) -> Iterator[Path]:
    """Each document path once, in a stable order: files as given, folders walked sorted and
    recursive, their files larger first within a window of ``FOLDER_WINDOW`` (equal sizes in name
    order), so that a large document found late does not make the tail of the run while the
    walk stays lazy.

    Every file counts, whatever its name: one that is neither a PDF nor an image the plugins read
    becomes one clear error for that file, never a silent skip. Hidden files and folders (names
    starting with a dot, such as .DS_Store or .git) and anything under ``exclude`` (the output
    folder) are left out; how many hidden ones were left out is logged for each folder.
    """
    seen: set[Path] = set()
    excluded = exclude.resolve() if exclude else None
    for item in inputs:
        if item == "-":
            stream = stdin or sys.stdin
            listed: Iterable[Path] = (Path(line.strip()) for line in stream if line.strip())
        else:
            listed = [Path(item)]
        for given in listed:
            candidates = _in_folder(given, excluded) if given.is_dir() else [given]
            for path in candidates:
                resolved = path.resolve()
                if resolved in seen:
                    continue
                seen.add(resolved)
                yield path


def _in_folder(folder: Path, excluded: Path | None) -> Iterator[Path]:
    hidden = [0]
    found = 0
    for path in _larger_first(_walk(folder, excluded, hidden), FOLDER_WINDOW):
        found += 1
        yield path
    if hidden[0]:
        logger.info("{}: {} hidden file(s) or folder(s) left out (names starting with a dot)", folder, hidden[0])
    if not found:
        logger.warning("no documents found in {}", folder)


def _larger_first(paths: Iterable[Path], window: int) -> Iterator[Path]:
    """``paths``, the largest of the next ``window`` each time; a file that cannot be sized
    counts as empty (reading it fails later, naming it)."""
    ahead: list[tuple[int, int, Path]] = []
    order = itertools.count()
    for path in paths:
        heapq.heappush(ahead, (-_size_of(path), next(order), path))
        if len(ahead) >= window:
            yield heapq.heappop(ahead)[2]
    while ahead:
        yield heapq.heappop(ahead)[2]


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _walk(folder: Path, excluded: Path | None, hidden: list[int]) -> Iterator[Path]:
    """Files under ``folder``, sorted; ``hidden[0]`` counts the dot-named entries left out."""
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        hidden[0] += sum(name.startswith(".") for name in dirs) + sum(name.startswith(".") for name in files)
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


def unread_key(path: Path) -> str:
    """The key of a document whose content could not be read: from its path, never a hash of
    content, so that the file is read again once it can be (its content key then differs)."""
    return UNREAD_PREFIX + hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()


def iter_documents(
    inputs: Iterable[str], priority: str = "normal", exclude: Path | None = None, stdin: TextIO | None = None
) -> Iterator[Document]:
    """Documents with their content hash, read lazily as the run needs them."""
    for path in iter_paths(inputs, exclude, stdin):
        kind = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "pdf"
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                # a named pipe or a device would block (or never end) a read: the worker that
                # opens it says what it is, as one failed record naming the file
                yield Document(path=str(path), sha256=unread_key(path), size=0, priority=priority, kind=kind)  # type: ignore[arg-type]
                continue
            size = info.st_size
            digest = sha256_of(path)
        except OSError as exc:
            # opening it in a worker fails the same way: one failed record naming the file
            logger.debug("{}: cannot read: {}", path, exc.strerror or exc)
            yield Document(path=str(path), sha256=unread_key(path), size=0, priority=priority, kind=kind)  # type: ignore[arg-type]
            continue
        yield Document(path=str(path), sha256=digest, size=size, priority=priority, kind=kind)  # type: ignore[arg-type]


class PeekedLines:
    """A text stream whose first non-blank line has been read ahead: iterating gives it back
    first, then the rest. Lets a caller find an empty list of paths before any work starts."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._ahead: list[str] = []
        for line in stream:
            if line.strip():
                self._ahead.append(line)
                break

    def empty(self) -> bool:
        return not self._ahead

    def __iter__(self) -> Iterator[str]:
        while self._ahead:
            yield self._ahead.pop(0)
        yield from self._stream

    def readline(self) -> str:
        return self._ahead.pop(0) if self._ahead else self._stream.readline()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()
