"""What a file is, before any parser reads it: a regular file or not (a named pipe, a socket or a
device is never opened: a read could block the worker), then a PDF or an image by its first bytes,
never by its name."""

from __future__ import annotations

import os
import stat

from engine.errors import EmptyDocumentError, UnsupportedDocumentError
from plugins import pdf_documents
from plugins.image_ingest import sniff, unsupported_message


def kind_of(path: str) -> str:
    """"pdf" or "image" for the file at ``path``, from its type and its first bytes (never its
    name); a file that is neither raises the :mod:`engine.errors` exception that says why."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise UnsupportedDocumentError(f"not a regular file ({special_kind(mode)})")
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except OSError as exc:
        raise pdf_documents.read_error(exc) from exc
    if not head:
        raise EmptyDocumentError("empty file (0 bytes)")
    kind = sniff(head)
    if kind == "unknown":
        raise UnsupportedDocumentError(unsupported_message(head))
    return kind


def special_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words, from its ``st_mode``."""
    for test, name in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "a special file"
