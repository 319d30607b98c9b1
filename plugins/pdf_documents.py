"""The PDF documents a worker has open: the file's bytes, a pypdf reader and a pdfium document.

The pages of a document usually reach a worker close together, so each worker keeps its last
``CACHE_SIZE`` documents open (least recently used first out) instead of parsing the file again
for every page. The key is (process id, path, sha256, password).

Fork safety. The cache belongs to the process that filled it. A child forked from a process with a
full cache starts empty: ``os.register_at_fork`` resets the cache and its locks in the child, and
every access compares the process id as well, so a child never uses its parent's parsers or a lock
another thread held at the fork. Nothing keeps a file open: the file is read once into memory, its
hash checked, and both parsers work from those bytes (pypdf reads a whole file into memory anyway),
so no file offset is shared between processes either.

Threads. pdfium is not thread-safe (not even across documents): every pdfium call holds
:data:`pdfium_lock`. A pypdf reader is used under its document's ``lock``.

Logs. While pagemill calls pypdf (inside :func:`quiet`), pypdf's warnings go to the debug log
(loguru) instead of stderr. Nothing is set on import: the ``pypdf`` logger of a program that embeds
pagemill keeps its level, handlers and propagation, and its own pypdf calls log as they always did.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import io
import logging
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from loguru import logger

from engine.errors import (
    CorruptDocumentError,
    EncryptedDocumentError,
    PagemillError,
    PermanentError,
    TransientError,
)

CACHE_SIZE = 4
TAIL_WINDOW = 1024  # a PDF ends with %%EOF within its last KiB
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TRANSIENT_READ_ERRNOS = frozenset({errno.EAGAIN, errno.EBUSY, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EIO,
                                    errno.ETIMEDOUT})


class _LoguruBridge(logging.Handler):
    """pypdf's log records of one thread become loguru debug messages.

    Being a handler of the ``pypdf`` logger, it also keeps Python's last-resort handler from
    printing them to stderr when the program has no logging set up; records still propagate to
    the handlers a program set up itself.
    """

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        try:
            logger.debug("pypdf: {}", record.getMessage())
        except Exception:  # noqa: BLE001 - a log record must never break a page
            pass


_bridged = threading.local()


@contextlib.contextmanager
def quiet(source: str = "pypdf") -> Iterator[None]:
    """Warnings raised inside, and pypdf's log records, go to the debug log instead of stderr."""
    bridge = None
    if not getattr(_bridged, "active", False):
        bridge, _bridged.active = _LoguruBridge(), True
        logging.getLogger("pypdf").addHandler(bridge)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        if bridge is not None:
            logging.getLogger("pypdf").removeHandler(bridge)
            _bridged.active = False
    for warning in caught:
        logger.debug("{}: {}", source, warning.message)


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (for the messages of wrapped errors)."""
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_error(exc: OSError) -> PagemillError:
    """The error for a file that cannot be read: transient for a busy or flaky resource."""
    message = f"cannot read the file: {exc.strerror or exc}"
    if exc.errno in _TRANSIENT_READ_ERRNOS:
        return TransientError(message)
    return PermanentError(message)


def read_document_bytes(path: str, sha256: str) -> bytes:
    """The whole file; an error if it cannot be read or is no longer the file that was listed."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise read_error(exc) from exc
    if _SHA256_HEX.fullmatch(sha256) and hashlib.sha256(data).hexdigest() != sha256:
        raise PermanentError("the file changed since it was listed (its sha256 differs); run again to read it")
    return data


class OpenPdf:
    """One document's bytes and, opened on first use, its pypdf reader and pdfium document."""

    def __init__(self, path: str, data: bytes, password: str | None) -> None:
        self.path = path
        self.data = data
        self.password = password
        self.lock = threading.RLock()
        self.password_used: str | None = None
        self._reader: Any = None
        self._reader_error: PagemillError | None = None
        self._pdfium: Any = None
        self._pdfium_error: PagemillError | None = None

    @property
    def truncated(self) -> bool:
        """No ``%%EOF`` in the last KiB: the file was most likely cut off."""
        return b"%%EOF" not in self.data[-TAIL_WINDOW:]

    def reader(self) -> Any:
        """The pypdf reader, decrypted; raises the same error every time when it cannot be had."""
        if self._reader is None and self._reader_error is None:
            try:
                self._reader = self._open_reader()
            except PagemillError as exc:
                self._reader_error = exc
        if self._reader_error is not None:
            raise _again(self._reader_error)
        return self._reader

    def _open_reader(self) -> Any:
        from pypdf import PdfReader

        try:
            with quiet():
                reader = PdfReader(io.BytesIO(self.data), strict=False)
                if reader.is_encrypted:
                    self.password_used = _decrypt(reader, self.password)
                reader.trailer["/Root"].get_object()  # a file without a catalog fails here, once
        except (EncryptedDocumentError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - any parser failure is the file's, said in one line
            raise CorruptDocumentError(f"{self.damage()}pypdf cannot read it: {one_line(exc)}") from None
        return reader

    def damage(self) -> str:
        """A prefix for error messages: ``truncated (no %%EOF at the end); `` when it is."""
        return "truncated (no %%EOF at the end); " if self.truncated else ""

    def pdfium(self) -> Any:
        """The pdfium document (call with :data:`pdfium_lock` held)."""
        if self._pdfium is None and self._pdfium_error is None:
            try:
                self._pdfium = _open_pdfium(self.data, self.password_used if self._reader else self.password)
            except PagemillError as exc:
                self._pdfium_error = exc
        if self._pdfium_error is not None:
            raise _again(self._pdfium_error)
        return self._pdfium

    def close(self) -> None:
        if self._pdfium is not None:
            with pdfium_lock:
                with contextlib.suppress(Exception):
                    self._pdfium.close()
        self._pdfium = self._reader = None


def _again(error: PagemillError) -> PagemillError:
    """A fresh copy of a remembered error (raising one instance again and again grows its traceback)."""
    return type(error)(*error.args)


def _decrypt(reader: Any, password: str | None) -> str:
    """Open an encrypted reader with the password given, else with the empty user password."""
    from pypdf import PasswordType
    from pypdf.errors import DependencyError

    for candidate in dict.fromkeys([password or "", ""]):
        try:
            if reader.decrypt(candidate) != PasswordType.NOT_DECRYPTED:
                return candidate
        except DependencyError as exc:
            raise EncryptedDocumentError(f"encrypted with a method that needs a missing package: {one_line(exc)}") from None
        except NotImplementedError as exc:
            raise EncryptedDocumentError(f"encrypted with an unsupported method: {one_line(exc)}") from None
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken /Encrypt dictionary
            raise EncryptedDocumentError(f"encrypted, with a broken encryption dictionary: {one_line(exc)}") from None
    if password:
        raise EncryptedDocumentError("encrypted; the password given (--password) does not open it")
    raise EncryptedDocumentError("encrypted; pass --password")


def _open_pdfium(data: bytes, password: str | None) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data, password=password or None)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise EncryptedDocumentError("encrypted; pass --password" if not password
                                         else "encrypted; the password given (--password) does not open it") from None
        raise CorruptDocumentError(f"pdfium cannot read it: {one_line(exc)}") from None


# ------------------------------------------------------------------------- cache
pdfium_lock = threading.RLock()
_cache: OrderedDict[tuple[int, str, str, str | None], OpenPdf] = OrderedDict()
_cache_lock = threading.RLock()
_cache_pid = os.getpid()


def _forget_inherited() -> None:
    """In a forked child: start with an empty cache and fresh locks (never close the parent's)."""
    global _cache, _cache_lock, _cache_pid, pdfium_lock
    _cache = OrderedDict()
    _cache_lock = threading.RLock()
    pdfium_lock = threading.RLock()
    _cache_pid = os.getpid()


os.register_at_fork(after_in_child=_forget_inherited)


def open_pdf(path: str, sha256: str, password: str | None) -> OpenPdf:
    """The document, from the cache or read now (its parsers open on first use)."""
    if _cache_pid != os.getpid():
        _forget_inherited()
    key = (os.getpid(), path, sha256, password)
    with _cache_lock:
        document = _cache.get(key)
        if document is not None:
            _cache.move_to_end(key)
            return document
    document = OpenPdf(path, read_document_bytes(path, sha256), password)
    with _cache_lock:
        _cache[key] = document
        evicted = []
        while len(_cache) > CACHE_SIZE:
            evicted.append(_cache.popitem(last=False)[1])
    for old in evicted:
        old.close()
    return document


def cached_documents() -> list[tuple[int, str, str]]:
    """(process id, path, sha256) of the open documents, oldest first (for tests and debugging)."""
    with _cache_lock:
        return [(pid, path, sha256) for pid, path, sha256, _ in _cache]


def clear_cache() -> None:
    """Close and forget every open document of this process."""
    with _cache_lock:
        documents = list(_cache.values())
        _cache.clear()
    for document in documents:
        document.close()


atexit.register(clear_cache)  # pdfium documents closed in order, not by its exit-time sweep
