"""Image files as documents (PNG, JPEG, TIFF: a frame a page), and the image helpers of ingest.

The kind of a file is found by its first bytes, never by its name. Sizes are checked from the
header before a pixel is decoded: a frame over ``max_image_pixels`` is a
:class:`PageTooLargeError`, so a decompression bomb never expands. Pillow's own limit
(``Image.MAX_IMAGE_PIXELS``, which warns above its value and refuses above twice its value) is set
to half of ``max_image_pixels``: Pillow then refuses exactly what pagemill refuses, everywhere
Pillow decodes (the images pypdf takes out of a PDF too), and the default of
``max_image_pixels`` (178,956,970) gives Pillow its own default.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from loguru import logger
from PIL import Image, ImageOps

from engine.errors import CorruptDocumentError, PageTooLargeError
from engine.records import Document, PageContent, PageTask

PDF_MAGIC = b"%PDF-"
PDF_HEADER_WINDOW = 1024  # readers accept junk before the header within the first KiB
IMAGE_MAGICS: dict[bytes, str] = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"II+\x00": "TIFF",  # BigTIFF
    b"MM\x00+": "TIFF",
}
IMAGE_FORMATS = frozenset(IMAGE_MAGICS.values())
BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)  # the DIB header sizes a BMP file may have


def sniff(head: bytes) -> str:
    """"pdf", "image" or "unknown" for the first bytes of a file."""
    if PDF_MAGIC in head[:PDF_HEADER_WINDOW]:
        return "pdf"
    if head.startswith(tuple(IMAGE_MAGICS)):
        return "image"
    return "unknown"


def unsupported_format(head: bytes) -> str | None:
    """The name of an image format pagemill does not read ("BMP", "WEBP") that ``head`` starts, if any."""
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in BMP_HEADER_SIZES:
        return "BMP"
    return None


def unsupported_message(head: bytes) -> str:
    """Why a file that starts with ``head`` is not read: an image format named, else its first bytes."""
    name = unsupported_format(head)
    if name is not None:
        read = ", ".join(dict.fromkeys(IMAGE_MAGICS.values()))
        return f"unsupported image format {name} (pagemill reads PDF, {read})"
    return f"not a PDF or image (starts with {head[:8]!r})"


def follow_pixel_limit(max_image_pixels: int) -> None:
    """Make Pillow refuse what pagemill refuses (see the module's docstring)."""
    Image.MAX_IMAGE_PIXELS = max(1, max_image_pixels // 2)


def check_pixels(width: float, height: float, max_image_pixels: int, what: str) -> None:
    """Raise :class:`PageTooLargeError` when ``width × height`` is over the limit."""
    pixels = int(width) * int(height)
    if pixels > max_image_pixels:
        raise PageTooLargeError(
            f"{what} of {int(width)}×{int(height)} = {pixels:,} pixels is over the limit of "
            f"{max_image_pixels:,} (--max-image-pixels)"
        )


def bomb_error(exc: Exception, max_image_pixels: int, what: str) -> PageTooLargeError:
    """Pillow's DecompressionBombError (raised on opening, from the header) as pagemill's error."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f" of {int(found.group(1)):,} pixels" if found else ""
    return PageTooLargeError(f"{what}{size} is over the limit of {max_image_pixels:,} (--max-image-pixels)")


def ocr_ready(image: Image.Image) -> Image.Image:
    """The image in mode L or RGB: 1-bit and 16-bit gray to L, palette, CMYK and the rest to RGB
    (L when the palette is gray), transparency flattened onto white."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode == "1":
        return image.convert("L")
    if image.mode.startswith("I"):  # 16- or 32-bit gray: 16-bit values scaled to 8
        wide = image if image.mode == "I" else image.convert("I")
        return (wide.point(lambda value: value * (1 / 256)) if _max_value(wide) > 255 else wide).convert("L")
    if image.mode == "F":
        return image.convert("L")
    if image.mode == "P" and "transparency" not in image.info:
        rgb = image.convert("RGB")
        return rgb.convert("L") if _is_gray_palette(image) else rgb
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background.convert("L") if image.mode in ("LA", "La") else background
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...


def _max_value(image: Image.Image) -> float:
    extrema = image.getextrema()
    return float(extrema[1]) if isinstance(extrema, tuple) else float(extrema)


def _is_gray_palette(image: Image.Image) -> bool:
    palette = image.getpalette() or []
    triples = zip(palette[0::3], palette[1::3], palette[2::3])
    return all(red == green == blue for red, green, blue in triples)


def forward_warnings(caught: list[warnings.WarningMessage], source: str) -> None:
    """Warnings of a parsing library go to the debug log, never to stderr."""
    for warning in caught:
        logger.debug("{}: {}", source, warning.message)


# ------------------------------------------------------------------ image files
def _count_frames(image: Image.Image, max_image_pixels: int) -> tuple[int, str | None]:
    """(frames found, why the next one cannot be read or None), walking the frames' headers.

    Frames are found one after the other (a TIFF chains each frame's directory to the next), so
    a file cut short loses the frame where the chain breaks and every frame after it; the count
    the file would have had cannot be known.
    """
    index = 0
    while True:
        try:
            if index:
                image.seek(index)
        except EOFError:
            return index, None
        except (Image.DecompressionBombError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a broken frame directory: the frames before it stand
            return index, _one_line(exc)
        check_pixels(*image.size, max_image_pixels, f"image frame {index + 1}")
        index += 1


def ingest_image_file(document: Document, max_image_pixels: int) -> list[PageTask]:
    """One page task per frame, after checking every frame's size (header only).

    A frame that cannot be found (the file is cut short or its frame chain is damaged) is a page
    too, after the frames that read: its load fails on its own, naming the frame.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(document.path) as image:
                if image.format not in IMAGE_FORMATS:
                    raise CorruptDocumentError(f"an image Pillow reads as {image.format}, not PNG, JPEG or TIFF")
                count, broken = _count_frames(image, max_image_pixels)
        except (PageTooLargeError, CorruptDocumentError):
            raise
        except Image.DecompressionBombError as exc:
            raise bomb_error(exc, max_image_pixels, "image") from None
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever Pillow raises on a broken file, said in one line
            raise CorruptDocumentError(f"not a readable image: {_one_line(exc)}") from None
    forward_warnings(caught, "pillow")
    if count == 0:
        raise CorruptDocumentError("an image file with no frame")
    if broken is not None:
        logger.debug("{}: frame {} cannot be found ({}); {} frame(s) before it are read",
                     document.path, count + 1, broken, count)
        count += 1  # the broken frame is a page that fails alone
    return [PageTask(document.path, document.sha256, index, count, "image", document.priority) for index in range(count)]


def load_image_frame(page: PageTask, max_image_pixels: int) -> PageContent:
    """The frame of an image file, upright (EXIF orientation applied), in mode L or RGB."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(page.document) as image:
                _seek_frame(image, page)
                check_pixels(*image.size, max_image_pixels, "image")
                image.load()
                frame = ocr_ready(ImageOps.exif_transpose(image))
        except (PageTooLargeError, CorruptDocumentError):
            raise
        except Image.DecompressionBombError as exc:
            raise bomb_error(exc, max_image_pixels, "image") from None
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever Pillow raises on a broken file, said in one line
            raise CorruptDocumentError(f"cannot read frame {page.number}: {_one_line(exc)}") from None
    forward_warnings(caught, "pillow")
    return PageContent(image=frame, source="image-file", dpi=_dpi_of(frame))


def _seek_frame(image: Image.Image, page: PageTask) -> None:
    try:
        image.seek(page.index)
    except (Image.DecompressionBombError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - the frame's directory is missing or broken
        raise CorruptDocumentError(
            f"frame {page.number} cannot be found, the file is cut short or damaged there ({_one_line(exc)}); "
            f"frames after it, if any, are lost with it"
        ) from None


def _dpi_of(image: Image.Image) -> float | None:
    dpi: Any = image.info.get("dpi")
    try:
        return float(dpi[0]) if dpi and float(dpi[0]) > 1 else None
    except (TypeError, ValueError, IndexError):
        return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
