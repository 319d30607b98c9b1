"""Built-in ingest: PDFs (pypdf, pypdfium2) and image files (Pillow), a page per PDF page or frame.

- ``pagemill_ingest`` finds what a file is by its first bytes (never its name), opens it (with
  ``--password`` when it is encrypted), counts its pages and marks those with a usable text layer.
- ``pagemill_load_page`` gives the OCR stage what it reads: the text layer (OCR is then skipped
  unless ``--force-ocr``), unless the page is a scan whose only visible text is a few characters
  such as a scanner's stamp (:mod:`plugins.pdf_layout`); else a scan's one full-page image, taken
  out as it is stored and turned upright (:mod:`plugins.pdf_scan`); else the page rendered by
  pdfium at ``--dpi``. The page of an image file is its frame (:mod:`plugins.image_ingest`). Open
  documents are cached per worker (:mod:`plugins.pdf_documents`).

Files that are neither. A file that is neither a PDF nor a PNG, JPEG or TIFF image raises
:class:`UnsupportedDocumentError` here instead of returning ``None``: the engine has no other ingest
plugin, and one clear error naming the file's first bytes beats "no plugin can read this file". A
plugin that reads other kinds of files registers its ``pagemill_ingest`` with ``tryfirst=True``
and claims them before this one.

Bad input is one :mod:`engine.errors` exception with a one-line message (the engine adds the file
and page): EmptyDocumentError (no bytes, no pages), UnsupportedDocumentError, EncryptedDocumentError,
CorruptDocumentError (its message starts with "truncated" when the file lacks its ``%%EOF``),
PageTooLargeError. A PDF pypdf cannot parse but pdfium can is not refused: its pages are rendered.

Limits. Sizes are checked before anything is decoded or rendered: an image file's frames from
Pillow's header, a PDF's images from their ``/Width`` × ``/Height``, a render from the page box ×
dpi / 72; over ``max_image_pixels`` is a PageTooLargeError (a decompression bomb never expands).
pypdf bounds its own work (page-tree depth and cycles, xref loops, decompressed sizes: its
``Configuration``); on top of that, ingest probes text layers for at most ``TEXT_PROBE_SECONDS``
(or half the page timeout), pages left unprobed keep the cheap answer "has fonts" and are decided
at load; a scan's content stream is parsed only up to 512 KiB and pypdf extracts the text of a
content stream only up to ``MAX_TEXT_CONTENT_BYTES`` (pdfium, in C, reads longer ones). What still
hangs inside a parser is ended by the engine's page timeout, which also covers ingest.
"""

from __future__ import annotations

import math
import time
from typing import Any

from loguru import logger

from engine import hookimpl
from engine.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    PagemillError,
    PageTooLargeError,
    TransientError,
)
from engine.records import Document, PageContent, PageTask
from plugins import pdf_documents
from plugins.image_ingest import (
    bomb_error,
    check_pixels,
    follow_pixel_limit,
    ingest_image_file,
    load_image_frame,
)
from plugins.file_kind import kind_of
from plugins.pdf_documents import OpenPdf, one_line, open_pdf, quiet
from plugins.pdf_layout import MIN_TEXT_CHARS, content_bytes, page_layout, pdfium_layout
from plugins.pdf_scan import check_page_images, find_scan, image_xobjects, scan_image

TEXT_PROBE_SECONDS = 30.0
MAX_TEXT_CONTENT_BYTES = 4 * 1024 * 1024
MAX_FONT_SEARCH_DEPTH = 8
MIN_BYTES_PER_PAGE = 8  # no page object is shorter, even compressed in an object stream
LAYOUT_KEEPS = 0.9  # text read with its layout is used when it keeps this share of the plain text's characters


# ------------------------------------------------------------------------ ingest
@hookimpl
def pagemill_ingest(document: Document, config: Any) -> list[PageTask]:
    """The document's page tasks; raises an :mod:`engine.errors` exception for a bad file."""
    follow_pixel_limit(config.max_image_pixels)
    kind = kind_of(document.path)
    if kind == "image":
        return ingest_image_file(document, config.max_image_pixels)
    return _ingest_pdf(document, config)


def _ingest_pdf(document: Document, config: Any) -> list[PageTask]:
    doc = open_pdf(document.path, document.sha256, config.password)
    deadline = time.monotonic() + min(TEXT_PROBE_SECONDS, config.page_timeout / 2)
    with doc.lock:
        try:
            reader = doc.reader()
            with quiet():
                count = _count_pages(reader)
                flags = [_probe_text(reader, index, deadline) for index in range(count)]
        except (EncryptedDocumentError, EmptyDocumentError, PageTooLargeError, TransientError, MemoryError):
            raise
        except PagemillError as exc:
            return _ingest_with_pdfium(document, doc, str(exc), deadline)
        except Exception as exc:  # noqa: BLE001 - a page tree pypdf cannot walk
            return _ingest_with_pdfium(document, doc, f"{doc.damage()}pypdf cannot read it: {one_line(exc)}", deadline)
    return [PageTask(document.path, document.sha256, index, count, "pdf", document.priority, flag)
            for index, flag in enumerate(flags)]


def _count_pages(reader: Any) -> int:
    """The pages pypdf finds walking the page tree (bounded, cycles cut), not the claimed /Count."""
    try:
        reader.pages[0]  # the first access walks the whole tree; until then pypdf trusts /Count
    except IndexError:
        raise EmptyDocumentError("a PDF with no pages") from None
    return len(reader.pages)


def _ingest_with_pdfium(document: Document, doc: OpenPdf, reason: str, deadline: float) -> list[PageTask]:
    """Pages of a PDF pypdf cannot parse, when pdfium can (not for a truncated file)."""
    if doc.truncated:
        raise CorruptDocumentError(reason)
    with pdf_documents.pdfium_lock:
        try:
            count = len(doc.pdfium())
        except EncryptedDocumentError:
            raise
        except PagemillError:
            raise CorruptDocumentError(f"{reason}; pdfium cannot read it either") from None
        if count == 0:
            raise EmptyDocumentError(f"a PDF with no pages ({reason})")
        if count * MIN_BYTES_PER_PAGE > len(doc.data):  # pdfium believes a page tree's /Count
            raise CorruptDocumentError(f"{reason}; pdfium counts {count:,} pages in {len(doc.data):,} bytes")
        flags = [time.monotonic() > deadline or _pdfium_text(doc, index) is not None for index in range(count)]
    logger.debug("{}: {}; its {} page(s) are read with pdfium", document.path, reason, count)
    return [PageTask(document.path, document.sha256, index, count, "pdf", document.priority, flag)
            for index, flag in enumerate(flags)]


def _probe_text(reader: Any, index: int, deadline: float) -> bool:
    """Whether page ``index`` has a usable text layer; cheap "has fonts" once past ``deadline``."""
    try:
        page = reader.pages[index]
        if not _has_fonts(page.get("/Resources")):
            return False
        if time.monotonic() > deadline or not _short_content(page):
            return True  # unsure: load decides, falling back to an image when the text is not usable
        return not _looks_scanned(page, reader) and _pypdf_text(page) is not None
    except (PagemillError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - a page pypdf cannot read is rendered
        logger.debug("page {}: no text layer read: {}", index + 1, one_line(exc))
        return False


def _has_fonts(resources: Any, depth: int = 0) -> bool:
    resources = resources.get_object() if hasattr(resources, "get_object") else resources
    if not isinstance(resources, dict) or depth > MAX_FONT_SEARCH_DEPTH:
        return False
    fonts = resources.get("/Font")
    fonts = fonts.get_object() if hasattr(fonts, "get_object") else fonts
    if isinstance(fonts, dict) and len(fonts) > 0:
        return True
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if hasattr(xobjects, "get_object") else xobjects
    if not isinstance(xobjects, dict):
        return False
    for name in list(xobjects.keys()):
        xobject = xobjects[name].get_object() if hasattr(xobjects[name], "get_object") else xobjects[name]
        if isinstance(xobject, dict) and xobject.get("/Subtype") == "/Form" and _has_fonts(xobject.get("/Resources"), depth + 1):
            return True
    return False


def _looks_scanned(page: Any, reader: Any) -> bool:
    """A page mostly covered by images whose text is a stamp, not an OCR layer or a text page."""
    try:
        if next(image_xobjects(page.get("/Resources")), None) is None:
            return False  # no image at all: no layout to measure
        with quiet():
            layout = page_layout(page, reader)
    except (PagemillError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - an unmeasurable page keeps its text layer
        logger.debug("page layout not measured: {}", one_line(exc))
        return False
    return layout is not None and layout.is_scan()


def usable(text: str | None) -> str | None:
    """The text when it has at least MIN_TEXT_CHARS printable, non-space characters, else None."""
    if not text:
        return None
    real = sum(1 for char in text if char.isprintable() and not char.isspace() and char != "\ufffd")
    return text if real >= MIN_TEXT_CHARS else None


def _pypdf_text(page: Any) -> str | None:
    """pypdf's text of a page, when usable; the caller checked the content's size.

    Read with its layout, a row's cells stay on one line, columns apart by runs of spaces and
    aligned with the rows above and below (a header row over its values); plain extraction puts a
    cell drawn on its own on a line of its own. The plain text when the layout cannot be read, or
    leaves text out (layout mode drops text that is not upright)."""
    with quiet():
        plain = page.extract_text()
        try:
            laid_out = page.extract_text(extraction_mode="layout", layout_mode_space_vertically=False)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - a pypdf without layout mode, or a page it cannot lay out
            logger.debug("text layout not read: {}", one_line(exc))
            laid_out = ""
    rows = "\n".join(line.rstrip() for line in (laid_out or "").splitlines() if line.strip())
    visible = [sum(1 for char in text or "" if not char.isspace()) for text in (rows, plain)]
    return usable(plain if visible[0] < LAYOUT_KEEPS * visible[1] else rows)


def _short_content(page: Any) -> bool:
    """Content streams short enough for pypdf's text extraction (pure Python) to be quick."""
    return content_bytes(page, MAX_TEXT_CONTENT_BYTES) is not None


def _pdfium_text(doc: OpenPdf, index: int) -> str | None:
    """The page's text as pdfium reads it (call with the pdfium lock held)."""
    try:
        page = doc.pdfium()[index]
        try:
            textpage = page.get_textpage()
            try:
                text = usable(textpage.get_text_range())
                return None if text is None or pdfium_layout(page, textpage).is_scan() else text
            finally:
                textpage.close()
        finally:
            page.close()
    except (EncryptedDocumentError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - no text then; the page is rendered
        logger.debug("page {}: pdfium reads no text: {}", index + 1, one_line(exc))
        return None


# -------------------------------------------------------------------- load page
@hookimpl
def pagemill_load_page(page: PageTask, config: Any) -> PageContent | None:
    """Text layer, embedded scan image or render (PDF), or the frame (image file)."""
    follow_pixel_limit(config.max_image_pixels)
    if page.kind == "image":
        return load_image_frame(page, config.max_image_pixels)
    if page.kind != "pdf":
        return None
    doc = open_pdf(page.document, page.sha256, config.password)
    with doc.lock:
        pdf_page, reader, problem = _pypdf_page(doc, page)
        if page.has_text_layer and not config.force_ocr:
            text = _text_of(doc, page, pdf_page, reader)
            if text is not None:
                return PageContent(text=text, source="text-layer")
        if pdf_page is not None:
            _check_images(pdf_page, config)  # before pypdf or pdfium decodes any of them
            content = _embedded_scan(pdf_page, reader, page, config)
            if content is not None:
                return content
    try:
        image = render_page(doc, page.index, config)
    except CorruptDocumentError as exc:
        if problem:  # the one line says why neither parser could read the page
            damage = doc.damage()
            raise CorruptDocumentError(f"{damage}{problem.removeprefix(damage)}; {str(exc).removeprefix(damage)}") from None
        raise
    return PageContent(image=image, source="rendered", dpi=float(config.dpi))


def _pypdf_page(doc: OpenPdf, page: PageTask) -> tuple[Any, Any, str]:
    """(pypdf page, reader, ""), or (None, None, why) when pypdf cannot read it (pdfium then does)."""
    try:
        reader = doc.reader()
    except EncryptedDocumentError:
        raise
    except CorruptDocumentError as exc:
        return None, None, str(exc)
    try:
        with quiet():
            count = len(reader.pages)
            if page.index >= count:
                raise CorruptDocumentError(f"page {page.number} is not in the file (it has {count} pages)")
            return reader.pages[page.index], reader, ""
    except (PagemillError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001
        logger.debug("{}: pypdf cannot read the page: {}", page.where(), one_line(exc))
        return None, None, f"pypdf cannot read the page: {one_line(exc)}"


def _check_images(pdf_page: Any, config: Any) -> None:
    try:
        with quiet():
            check_page_images(pdf_page, config.max_image_pixels)
    except (PageTooLargeError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable resources: pdfium will judge
        logger.debug("images not checked: {}", one_line(exc))


def _text_of(doc: OpenPdf, page: PageTask, pdf_page: Any, reader: Any) -> str | None:
    if pdf_page is not None:
        try:
            if _short_content(pdf_page):
                return None if _looks_scanned(pdf_page, reader) else _pypdf_text(pdf_page)
        except (PagemillError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - pdfium gets its turn
            logger.debug("{}: pypdf reads no text: {}", page.where(), one_line(exc))
    with pdf_documents.pdfium_lock:
        try:
            doc.pdfium()
        except EncryptedDocumentError:
            raise
        except PagemillError:
            return None
        return _pdfium_text(doc, page.index)


def _embedded_scan(pdf_page: Any, reader: Any, page: PageTask, config: Any) -> PageContent | None:
    try:
        with quiet():
            scan = find_scan(pdf_page, reader)
            image = scan_image(scan, config.max_image_pixels) if scan is not None else None
    except (PageTooLargeError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - any trouble with the stored image: render instead
        from PIL import Image

        if isinstance(exc, Image.DecompressionBombError):
            raise bomb_error(exc, config.max_image_pixels, "embedded image") from None
        logger.debug("{}: embedded image not taken: {}", page.where(), one_line(exc))
        return None
    if image is None:
        return None
    return PageContent(image=image, source="embedded-image", dpi=scan.dpi if scan else None)


def render_page(doc: OpenPdf, index: int, config: Any) -> Any:
    """The page rendered by pdfium at ``config.dpi``, in gray (size checked first)."""
    import pypdfium2 as pdfium

    with pdf_documents.pdfium_lock:
        pdf = doc.pdfium()
        if index >= len(pdf):
            raise CorruptDocumentError(f"page {index + 1} is not in the file (pdfium finds {len(pdf)} pages)")
        try:
            pdf_page = pdf[index]
            try:
                width, height = pdf_page.get_size()
                scale = config.dpi / 72.0 * (1 - 1e-9)  # pdfium rounds up: 11 in at 150 dpi is 1650 px, not 1651
                check_pixels(math.ceil(width * scale), math.ceil(height * scale), config.max_image_pixels,
                             f"page rendered at {config.dpi} dpi")
                for image in pdf_page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE], max_depth=8):
                    check_pixels(*image.get_px_size(), config.max_image_pixels, "embedded image")  # not decoded
                bitmap = pdf_page.render(scale=scale, grayscale=True)
                try:
                    return bitmap.to_pil().copy()
                finally:
                    bitmap.close()
            finally:
                pdf_page.close()
        except (PagemillError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - PdfiumError mostly; whatever it is, it is the file's
            raise CorruptDocumentError(f"{doc.damage()}pdfium cannot render the page: {one_line(exc)}") from None


# ----------------------------------------------------------------- classify
@hookimpl
def pagemill_classify_error(error: BaseException, stage: str, page: PageTask | None) -> str | None:
    """pypdf, pdfium and Pillow errors that escaped are the file's (permanent); MemoryError is transient."""
    if isinstance(error, MemoryError):
        return "transient"
    from pypdf.errors import DependencyError, PyPdfError

    if isinstance(error, (PyPdfError, DependencyError)):
        return "permanent"
    import pypdfium2 as pdfium
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, (pdfium.PdfiumError, UnidentifiedImageError, Image.DecompressionBombError)):
        return "permanent"
    return None

