"""The records that flow through pagemill.

Records that cross process boundaries are frozen dataclasses and pickle small: a page task
carries a reference to its document (path, sha256, index), never image bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Priority = Literal["urgent", "high", "normal", "low"]
PRIORITY_RANKS: dict[str, int] = {"urgent": 0, "high": 1, "normal": 2, "low": 3}

PageStatus = Literal["ok", "review", "failed"]
ErrorClass = Literal["transient", "permanent", "critical"]

STAGES: tuple[str, ...] = ("ingest", "load", "ocr", "extract", "validate")


@dataclass(frozen=True)
class Document:
    """One input file, before it is split into pages."""

    path: str
    sha256: str
    size: int
    priority: Priority = "normal"
    kind: str = "pdf"  # "pdf" or "image"


@dataclass(frozen=True)
class PageTask:
    """One page of one document: the unit of scheduling."""

    document: str  # path of the document
    sha256: str  # content hash of the document
    index: int  # 0-based page index
    page_count: int
    kind: str = "pdf"
    priority: Priority = "normal"
    has_text_layer: bool = False

    @property
    def number(self) -> int:
        """The 1-based page number people use."""
        return self.index + 1

    @property
    def key(self) -> tuple[str, int]:
        """The identity of a page across runs: document hash and index."""
        return (self.sha256, self.index)

    def where(self) -> str:
        return f"{self.document} page {self.number}"


@dataclass(frozen=True)
class EncodedImage:
    """A page image still in its file format (a scan's JPEG as stored in the PDF).

    OCR engines that read files take the bytes as they are: no decode and re-encode in Python.
    ``to_pil()`` gives a PIL image for those that need one.
    """

    data: bytes
    format: str  # "JPEG"
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def to_pil(self) -> Any:
        import io

        from PIL import Image

        return Image.open(io.BytesIO(self.data))


@dataclass
class PageContent:
    """What a page holds for the OCR stage: a text layer, an image, or both.

    Lives inside one worker only (it may hold a PIL image), so it is not frozen.
    """

    text: str | None = None
    image: Any = None  # a PIL.Image.Image or an EncodedImage
    source: str = "unknown"  # "text-layer", "embedded-image", "rendered", "image-file"
    dpi: float | None = None


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float  # 0..100 as tesseract reports it
    line: int  # index of the line in OcrResult.lines
    left: int = 0
    top: int = 0
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class OcrResult:
    text: str
    lines: tuple[str, ...] = ()
    words: tuple[Word, ...] = ()
    mean_confidence: float = 100.0  # 0..100
    engine: str = "unknown"


@dataclass(frozen=True)
class Field:
    name: str
    value: Any
    confidence: float  # 0..1
    raw: str = ""
    type: str = "text"


@dataclass(frozen=True)
class Issue:
    code: str  # short machine-readable code, e.g. "missing_field", "net_mismatch"
    message: str
    field: str | None = None
    severity: str = "review"  # "review" or "info"


ERROR_MESSAGE_CHARS = 2000  # a longer error message is cut, saying how much was left out
_CUT_SLACK = 40  # room for that note, so a message cut once is never cut again


@dataclass(frozen=True)
class ErrorInfo:
    """An error as records, logs and outputs show it; the message is at most about
    ``ERROR_MESSAGE_CHARS`` characters (a plugin's exception may carry megabytes)."""

    error_class: ErrorClass
    type: str  # exception class name
    message: str
    stage: str = ""

    def __post_init__(self) -> None:
        message = self.message if isinstance(self.message, str) else str(self.message)
        if len(message) > ERROR_MESSAGE_CHARS + _CUT_SLACK:
            message = f"{message[:ERROR_MESSAGE_CHARS]}… ({len(message) - ERROR_MESSAGE_CHARS} more characters)"
        if message is not self.message:
            object.__setattr__(self, "message", message)

    def one_line(self) -> str:
        return f"{self.type}: {self.message}".replace("\n", " ")


@dataclass(frozen=True)
class PageResult:
    document: str
    sha256: str
    page: int  # 1-based
    page_count: int
    status: PageStatus
    fields: dict[str, Field] = field(default_factory=dict)
    issues: tuple[Issue, ...] = ()
    error: ErrorInfo | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    text_source: str = ""
    attempts: int = 1
    text: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.sha256, self.page - 1)

    def where(self) -> str:
        return f"{self.document} page {self.page}"


@dataclass(frozen=True)
class RunSummary:
    """How a run ended. ``pages_ok``, ``pages_review`` and ``pages_failed`` are the pages this run
    did; ``outputs_*`` are the pages the output folder holds after it (this run's and earlier
    runs'), and decide the status and the exit code.

    ``status``: ``finished`` (every page in the outputs done), ``partial`` (the outputs hold a
    failed page), ``cancelled`` (stopped early; resumable), ``critical`` (stopped on a critical
    condition: the OCR binary missing, the ledger or the outputs unwritable), ``crashed`` (an
    unexpected exception in the parent: a bug, or a callback or hook that raised; every page
    handed on is kept and the exception is raised again).
    """

    run_id: int
    out_dir: str | None
    status: str  # "finished", "partial", "cancelled", "critical", "crashed"
    pages_total: int
    pages_ok: int
    pages_review: int
    pages_failed: int
    pages_skipped: int  # done in an earlier run of the same ledger
    documents: int
    wall_seconds: float
    pages_per_second: float
    duplicate_documents: int = 0  # exact copies (same sha256) of another input document, not processed again
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_busy_seconds: dict[str, float] = field(default_factory=dict)
    errors_by_class: dict[str, int] = field(default_factory=dict)
    errors_by_type: dict[str, int] = field(default_factory=dict)
    peak_workers: int = 0
    breaker_events: int = 0
    breakers: dict[str, dict[str, int]] = field(default_factory=dict)  # "plugin.hook" → state changes
    message: str = ""
    outputs_ok: int = 0
    outputs_review: int = 0
    outputs_failed: int = 0
    pages_done_before: int = 0  # in the outputs from earlier runs, not redone by this one
    field_order: tuple[str, ...] = ()  # the fields the plugins extract: the first columns of the outputs

    @property
    def exit_code(self) -> int:
        """The CLI exit code this run maps to (DESIGN.md): 0, 1, 3 or 130."""
        if self.status in ("critical", "crashed"):
            return 3
        if self.status == "cancelled":
            return 130
        return 1 if self.status == "partial" or self.pages_failed or self.outputs_failed else 0
