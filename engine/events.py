"""What the dispatch loop yields to the run that drives it, and the feeds it reads documents from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from engine.records import Document, ErrorInfo, PageResult


@dataclass(frozen=True)
class DocumentOpened:
    document: Document
    pages: int
    pages_queued: int


@dataclass(frozen=True)
class DocumentFailed:
    document: Document
    error: ErrorInfo
    attempts: int
    job: int = 0


@dataclass(frozen=True)
class AttemptFailed:
    where: str
    key: tuple[str, int]
    attempt: int
    error: ErrorInfo
    seconds: float
    retry_in: float | None  # None when it was the last attempt


@dataclass(frozen=True)
class PageFinished:
    result: PageResult
    job: int = 0


@dataclass(frozen=True)
class Tick:
    pass


Event = DocumentOpened | DocumentFailed | AttemptFailed | PageFinished | Tick


@dataclass
class Feed:
    """Documents still to be read from one submission."""

    documents: Iterator[Document]
    rank: int
    job: int
    last_rank: int = -1  # the class its last document was queued in (a document may ask for better)


