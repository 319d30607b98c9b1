"""Built-in ingest: PDFs (pypdf, pypdfium2) and image files (pillow), a page per PDF page or frame.

- ``pagemill_ingest`` opens a document (the password from ``--password`` when it is encrypted),
  counts its pages and marks the pages that carry a usable text layer.
- ``pagemill_load_page`` gives the OCR stage what it needs: the text layer (OCR is then skipped
  unless ``--force-ocr``), else the one full-page embedded image of a scan, taken as it is without
  rendering, else the page rendered by pdfium at ``--dpi``. An image file's frame is its page.

A file that is neither a PDF nor an image is an :class:`UnsupportedDocumentError` here rather than
``None``: no other built-in plugin could read it, and one clear error beats "no plugin". A plugin
that reads other kinds of files registers ``tryfirst`` and claims them before this one.

Sizes are checked before anything is decoded: an image or a page whose pixels would exceed
``max_image_pixels`` is a :class:`PageTooLargeError` (a decompression bomb never expands).
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
from collections import OrderedDict
from typing import Any

from PIL import Image

from engine import hookimpl
from engine.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    PageTooLargeError,
    UnsupportedDocumentError,
)
from engine.records import Document, EncodedImage, PageContent, PageTask

MIN_TEXT_CHARS = 20
CACHE_SIZE = 4
logging.getLogger("pypdf").setLevel(logging.ERROR)

_cache: OrderedDict[tuple[int, str, str, str], Any] = OrderedDict()


@atexit.register
def _close_cached() -> None:
    """pdfium documents are closed explicitly; the rest goes with the process."""
    while _cache:
        (_, kind, _, _), value = _cache.popitem()
        if kind == "pdfium":
            value.close()


def sniff(path: str) -> str:
    """"pdf", "image" or "unknown", by the first bytes, never by the name."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except OSError as exc:
        raise CorruptDocumentError(f"cannot read: {exc.strerror or exc}") from None
    if not head:
        raise EmptyDocumentError("empty file (0 bytes)")
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"GIF8", b"BM")):
        return "image"
    return "unknown"


def _cached(kind: str, path: str, sha256: str, password: str | None, opener: Any) -> Any:
    key = (os.getpid(), kind, path, sha256)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    value = opener(path, password)
    _cache[key] = value
    while len(_cache) > CACHE_SIZE:
        _, old = _cache.popitem(last=False)
        close = getattr(old, "close", None)
        if close is not None and kind == "pdfium":
            close()
    return value


def _open_pypdf(path: str, password: str | None) -> Any:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(path, strict=False)
            if reader.is_encrypted:
                try:
                    result = reader.decrypt(password or "")
                except Exception as exc:  # noqa: BLE001 - pypdf raises several kinds here
                    raise EncryptedDocumentError(f"encrypted and cannot be decrypted: {exc}") from None
                if not result:
                    if password:
                        raise EncryptedDocumentError("encrypted; the password given is wrong")
                    raise EncryptedDocumentError("encrypted; pass --password")
    except (EncryptedDocumentError, EmptyDocumentError):
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError) as exc:
        raise CorruptDocumentError(f"not a readable PDF: {type(exc).__name__}: {exc}") from None
    return reader


def _open_pdfium(path: str, password: str | None) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(path, password=password)
    except pdfium.PdfiumError as exc:
        raise CorruptDocumentError(f"pdfium cannot open it: {exc}") from None


def _set_pixel_limit(config: Any) -> None:
    Image.MAX_IMAGE_PIXELS = config.max_image_pixels


# ------------------------------------------------------------------------ ingest
@hookimpl
def pagemill_ingest(document: Document, config: Any) -> list[PageTask]:
    _set_pixel_limit(config)
    kind = sniff(document.path)
    if kind == "image":
        return _ingest_image(document, config)
    if kind != "pdf":
        with open(document.path, "rb") as handle:
            head = handle.read(8)
        raise UnsupportedDocumentError(f"not a PDF or image (starts with {head!r})")
    reader = _cached("pypdf", document.path, document.sha256, config.password, _open_pypdf)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            count = len(reader.pages)
            if count == 0:
                raise EmptyDocumentError("the PDF has no pages")
            tasks = []
            for index in range(count):
                has_text = _text_of(reader.pages[index]) is not None
                tasks.append(PageTask(document.path, document.sha256, index, count, "pdf", document.priority, has_text))
    except (EmptyDocumentError, EncryptedDocumentError):
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's, said in one line
        raise CorruptDocumentError(f"cannot read the page tree: {type(exc).__name__}: {exc}") from None
    return tasks


def _ingest_image(document: Document, config: Any) -> list[PageTask]:
    try:
        with Image.open(document.path) as image:
            _check_pixels(image.size[0], image.size[1], config, "image")
            frames = getattr(image, "n_frames", 1)
    except PageTooLargeError:
        raise
    except Image.DecompressionBombError as exc:
        raise PageTooLargeError(f"image over the limit of {config.max_image_pixels:,} pixels (--max-image-pixels): {exc}") from None
    except Exception as exc:  # noqa: BLE001
        raise CorruptDocumentError(f"not a readable image: {type(exc).__name__}: {exc}") from None
    return [PageTask(document.path, document.sha256, i, frames, "image", document.priority) for i in range(frames)]


def _check_pixels(width: float, height: float, config: Any, what: str) -> None:
    pixels = int(width) * int(height)
    if pixels > config.max_image_pixels:
        raise PageTooLargeError(
            f"{what} of {int(width)}×{int(height)} = {pixels:,} pixels is over the limit of "
            f"{config.max_image_pixels:,} (--max-image-pixels)"
        )


def _text_of(page: Any) -> str | None:
    """The page's text layer when it is usable (enough real characters), else None."""
    try:
        text = page.extract_text() or ""
    except Exception:  # noqa: BLE001 - a broken text layer is no text layer
        return None
    return text if sum(1 for c in text if c.isalnum()) >= MIN_TEXT_CHARS else None


# -------------------------------------------------------------------- load page
@hookimpl
def pagemill_load_page(page: PageTask, config: Any) -> PageContent | None:
    _set_pixel_limit(config)
    if page.kind == "image":
        return _load_frame(page, config)
    if page.kind != "pdf":
        return None
    reader = _cached("pypdf", page.document, page.sha256, config.password, _open_pypdf)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pdf_page = reader.pages[page.index]
            text = _text_of(pdf_page) if page.has_text_layer else None
            if text is not None and not config.force_ocr:
                return PageContent(text=text, source="text-layer")
            image = _embedded_scan(pdf_page, config)
    except (PageTooLargeError, EncryptedDocumentError):
        raise
    except Exception:  # noqa: BLE001 - pdfium gets its chance below
        text, image = None, None
    if image is not None:
        return PageContent(text=text if not config.force_ocr else None, image=image, source="embedded-image")
    return PageContent(image=_render(page, config), source="rendered", dpi=config.dpi)


def _embedded_scan(pdf_page: Any, config: Any) -> Image.Image | EncodedImage | None:
    """The page's one image when it covers the whole page (a scan), upright; else None.

    A plain JPEG on an unrotated page comes as its bytes (EncodedImage): tesseract reads it as
    it is, with no decode and re-encode here."""
    resources = pdf_page.get("/Resources")
    xobjects = resources.get_object().get("/XObject") if resources is not None else None
    if xobjects is None:
        return None
    xobjects = xobjects.get_object()
    images = [xobjects[name].get_object() for name in xobjects if xobjects[name].get_object().get("/Subtype") == "/Image"]
    if len(images) != 1:
        return None
    width, height = images[0].get("/Width", 0), images[0].get("/Height", 0)
    _check_pixels(width, height, config, "embedded image")
    box = pdf_page.mediabox
    page_w, page_h = float(box.width), float(box.height)
    if not width or not height or not page_w or not page_h:
        return None
    if abs(width / height - page_w / page_h) > 0.03 * (page_w / page_h):
        return None  # not a full-page scan: render instead
    rotation = (pdf_page.get("/Rotate") or 0) % 360
    if not rotation and _plain_jpeg(images[0]):
        return EncodedImage(images[0].get_data(), "JPEG", int(width), int(height))
    files = pdf_page.images
    if len(files) != 1:
        return None
    image = files[0].image
    image = _ocr_mode(image)
    if rotation:
        image = image.rotate(-rotation, expand=True)
    return image


def _plain_jpeg(xobject: Any) -> bool:
    """A JPEG that tesseract can read as it is: no masks, no decode arrays, gray or RGB."""
    filters = xobject.get("/Filter")
    if isinstance(filters, list):
        filters = filters[0] if len(filters) == 1 else None
    return (
        filters == "/DCTDecode"
        and xobject.get("/ColorSpace") in ("/DeviceGray", "/DeviceRGB")
        and xobject.get("/BitsPerComponent", 8) == 8
        and "/SMask" not in xobject
        and "/Mask" not in xobject
        and "/Decode" not in xobject
    )


def _ocr_mode(image: Image.Image) -> Image.Image:
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("1", "LA", "I", "I;16", "F"):
        return image.convert("L")
    return image.convert("RGB")


def _render(page: PageTask, config: Any) -> Image.Image:
    import pypdfium2 as pdfium

    document = _cached("pdfium", page.document, page.sha256, config.password, _open_pdfium)
    try:
        pdf_page = document[page.index]
        width, height = pdf_page.get_size()
        scale = config.dpi / 72.0
        _check_pixels(width * scale, height * scale, config, "page rendered at --dpi")
        bitmap = pdf_page.render(scale=scale, grayscale=True)
        return bitmap.to_pil()
    except PageTooLargeError:
        raise
    except pdfium.PdfiumError as exc:
        raise CorruptDocumentError(f"pdfium cannot render it: {exc}") from None


def _load_frame(page: PageTask, config: Any) -> PageContent:
    try:
        with Image.open(page.document) as image:
            _check_pixels(image.size[0], image.size[1], config, "image")
            image.seek(page.index)
            frame = _ocr_mode(image.copy() if image.mode in ("L", "RGB") else image.convert("RGB"))
    except PageTooLargeError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CorruptDocumentError(f"cannot read frame {page.number}: {type(exc).__name__}: {exc}") from None
    return PageContent(image=frame, source="image-file")


@hookimpl
def pagemill_classify_error(error: BaseException, stage: str, page: PageTask | None) -> str | None:
    from pypdf.errors import PyPdfError

    if isinstance(error, PyPdfError):
        return "permanent"
    try:
        import pypdfium2 as pdfium

        if isinstance(error, pdfium.PdfiumError):
            return "permanent"
    except ImportError:  # pragma: no cover
        pass
    return None
