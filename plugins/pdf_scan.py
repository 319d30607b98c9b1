"""A scanned page's image, taken out of the PDF as it is stored instead of rendering the page.

A page counts as a plain scan when its content stream draws one image XObject and nothing else
that shows (invisible text, as an OCR layer is, may be there too) and the image covers the page's
crop box. The image then goes to OCR at its own resolution: no render, no resampling.

Upright as displayed. The matrix that places the image (the ``cm`` operators in force at its
``Do``) may turn or mirror it, and the page's ``/Rotate`` turns the whole page clockwise; both are
undone with one PIL transpose, so the image comes out as a viewer shows the page. A placement up to
``MAX_SKEW_DEGREES`` off a quarter turn (a skewed scan) is taken at the nearest quarter turn.

Anything unusual sends the page to the renderer instead: masks and soft masks, stencil masks,
``/Decode`` arrays, colour spaces other than gray, RGB, CMYK, calibrated, ICC-based and indexed
ones, JBIG2 (pypdf needs an external program for it; pdfium reads it), an image pypdf cannot
decode, or one whose decoded size is not its declared ``/Width`` × ``/Height``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Iterator

from PIL import Image

from engine.records import EncodedImage
from plugins.image_ingest import check_pixels, ocr_ready

SCAN_COVERAGE = 0.9  # the image covers at least this share of the crop box
MAX_OVERHANG = 1.3  # and its drawn area is at most this many times the crop box
MAX_SKEW_DEGREES = 10.0
MAX_SCAN_CONTENT_BYTES = 512 * 1024  # a scan's content stream is short; a longer one is rendered
MAX_FORM_DEPTH = 8

IMAGE_FILTERS = frozenset({
    "/FlateDecode", "/Fl", "/DCTDecode", "/DCT", "/CCITTFaxDecode", "/CCF", "/LZWDecode", "/LZW",
    "/RunLengthDecode", "/RL", "/ASCIIHexDecode", "/AHx", "/ASCII85Decode", "/A85", "/JPXDecode",
})
DEVICE_SPACES = {"/DeviceGray": 1, "/G": 1, "/CalGray": 1, "/DeviceRGB": 3, "/RGB": 3, "/CalRGB": 3,
                 "/DeviceCMYK": 4, "/CMYK": 4}
TEXT_SHOWING = frozenset({b"Tj", b"TJ", b"'", b'"'})
INVISIBLE_TEXT_MODES = frozenset({3, 7})
# operators that show nothing by themselves: state, text state, colours, path construction
# (a path shows only once painted), clipping, marked content, compatibility sections
SILENT = frozenset(
    b"q Q cm gs ri i w J j M d BT ET Tf Tm Td TD T* Tc Tw Tz TL Ts cs CS sc scn SC SCN g G rg RG k K "
    b"m l c v y h re n W W* BMC BDC EMC MP DP BX EX".split()
)

# (where the image's x axis points, where its downward axis points) on the screen (y down)
# → the PIL transpose that makes it upright
_TRANSPOSES: dict[tuple[tuple[int, int], tuple[int, int]], Image.Transpose | None] = {
    ((1, 0), (0, 1)): None,
    ((-1, 0), (0, 1)): Image.Transpose.FLIP_LEFT_RIGHT,
    ((1, 0), (0, -1)): Image.Transpose.FLIP_TOP_BOTTOM,
    ((-1, 0), (0, -1)): Image.Transpose.ROTATE_180,
    ((0, -1), (1, 0)): Image.Transpose.ROTATE_90,
    ((0, 1), (-1, 0)): Image.Transpose.ROTATE_270,
    ((0, 1), (1, 0)): Image.Transpose.TRANSPOSE,
    ((0, -1), (-1, 0)): Image.Transpose.TRANSVERSE,
}
_QUARTERS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # screen directions at 0°, 90°, 180°, 270° (clockwise)

Matrix = tuple[float, float, float, float, float, float]
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


@dataclass(frozen=True)
class PageScan:
    """The image that makes up a page, and how to turn it upright."""

    xobject: Any
    transpose: Image.Transpose | None
    dpi: float | None


# ---------------------------------------------------------------- size checks
def image_xobjects(resources: Any, depth: int = 0, seen: set[int] | None = None) -> Iterator[Any]:
    """Every image XObject reachable from a resources dictionary (through forms, loops cut)."""
    seen = set() if seen is None else seen
    resources = _resolve(resources)
    if not _is_dict(resources) or depth > MAX_FORM_DEPTH or id(resources) in seen:
        return
    seen.add(id(resources))
    xobjects = _resolve(resources.get("/XObject"))
    if not _is_dict(xobjects):
        return
    for name in list(xobjects.keys()):
        xobject = _resolve(xobjects[name])
        if not _is_dict(xobject):
            continue
        subtype = xobject.get("/Subtype")
        if subtype == "/Image":
            yield xobject
        elif subtype == "/Form":
            yield from image_xobjects(xobject.get("/Resources"), depth + 1, seen)


def check_page_images(page: Any, max_image_pixels: int) -> None:
    """PageTooLargeError for an image of the page over the limit, from ``/Width`` × ``/Height``."""
    for xobject in image_xobjects(page.get("/Resources")):
        width, height = _int(xobject.get("/Width")), _int(xobject.get("/Height"))
        check_pixels(width, height, max_image_pixels, "embedded image")


# ------------------------------------------------------------------- the scan
def find_scan(page: Any, reader: Any) -> PageScan | None:
    """The page's one full-page image and its turn, or None when the page is anything else."""
    placed = _the_placed_image(page, reader)
    if placed is None:
        return None
    xobject, matrix = placed
    if not _decodable(xobject):
        return None
    crop = _crop_box(page)
    if crop is None or not _covers(matrix, crop):
        return None
    rotation = _int(page.get("/Rotate")) % 360
    if rotation % 90:
        return None
    a, b, c, d, _, _ = matrix
    across = _on_screen((a, b), rotation)  # the image's x axis
    down = _on_screen((-c, -d), rotation)  # image rows run down from the top edge (unit y = 1)
    if across is None or down is None or (across, down) not in _TRANSPOSES:
        return None
    width_points = math.hypot(a, b)
    dpi = _int(xobject.get("/Width")) * 72.0 / width_points if width_points else None
    return PageScan(xobject, _TRANSPOSES[(across, down)], round(dpi, 1) if dpi else None)


def scan_image(scan: PageScan, max_image_pixels: int) -> Image.Image | EncodedImage | None:
    """The image, upright, in mode L or RGB; a plain unturned JPEG as its bytes. None: render it."""
    xobject = scan.xobject
    width, height = _int(xobject.get("/Width")), _int(xobject.get("/Height"))
    check_pixels(width, height, max_image_pixels, "embedded image")
    if scan.transpose is None and _plain_jpeg(xobject):
        data = xobject.get_data()
        header = Image.open(io.BytesIO(data))
        if header.format == "JPEG" and header.size == (width, height) and header.mode in ("L", "RGB"):
            return EncodedImage(data, "JPEG", width, height)
    image = xobject.decode_as_image()
    if not isinstance(image, Image.Image) or image.size != (width, height):
        return None
    image = ocr_ready(image)
    return image.transpose(scan.transpose) if scan.transpose is not None else image


def content_bytes(page: Any, limit: int = MAX_SCAN_CONTENT_BYTES) -> bytes | None:
    """The page's content streams joined, or None when they are longer than ``limit``."""
    contents = _resolve(page.get("/Contents"))
    if contents is None:
        return b""
    streams = contents if isinstance(contents, list) else [contents]
    parts: list[bytes] = []
    total = 0
    for stream in streams:
        stream = _resolve(stream)
        if not hasattr(stream, "get_data"):
            continue
        data = stream.get_data()
        total += len(data)
        if total > limit:
            return None
        parts.append(data)
    return b"\n".join(parts)


def _the_placed_image(page: Any, reader: Any) -> tuple[Any, Matrix] | None:
    from pypdf.generic import ContentStream, DecodedStreamObject

    data = content_bytes(page)
    if not data:
        return None
    resources = _resolve(page.get("/Resources"))
    xobjects = _resolve(resources.get("/XObject")) if _is_dict(resources) else None
    if not _is_dict(xobjects):
        return None
    stream = DecodedStreamObject()
    stream.set_data(data)
    ctm, text_mode, stack = IDENTITY, 0, []
    placed: tuple[Any, Matrix] | None = None
    for operands, operator in ContentStream(stream, reader).operations:
        if operator == b"q":
            stack.append((ctm, text_mode))
        elif operator == b"Q":
            if stack:
                ctm, text_mode = stack.pop()
        elif operator == b"cm":
            ctm = _multiply(_numbers(operands, 6), ctm)
        elif operator == b"Tr":
            text_mode = _int(operands[0]) if operands else 0
        elif operator == b"Do":
            xobject = _resolve(xobjects.get(operands[0])) if operands else None
            if placed is not None or not _is_dict(xobject) or xobject.get("/Subtype") != "/Image":
                return None  # a second image, a form or a missing XObject
            placed = (xobject, ctm)
        elif operator in TEXT_SHOWING:
            if text_mode not in INVISIBLE_TEXT_MODES:
                return None
        elif operator not in SILENT:
            return None  # painting, shading, inline images, unknown operators
    return placed


def _decodable(xobject: Any) -> bool:
    if xobject.get("/ImageMask") or "/SMask" in xobject or "/Mask" in xobject or "/Decode" in xobject:
        return False
    if _int(xobject.get("/BitsPerComponent", 8)) not in (1, 2, 4, 8, 16):
        return False
    if not all(name in IMAGE_FILTERS for name in _filters(xobject)):
        return False
    return _components(xobject.get("/ColorSpace")) is not None


def _plain_jpeg(xobject: Any) -> bool:
    """A JPEG tesseract reads as it is: the only filter DCT, 8-bit gray or RGB."""
    return (
        _filters(xobject) in (["/DCTDecode"], ["/DCT"])
        and _components(xobject.get("/ColorSpace")) in (1, 3)
        and _int(xobject.get("/BitsPerComponent", 8)) == 8
        and not _is_indexed(xobject.get("/ColorSpace"))
    )


def _filters(xobject: Any) -> list[str]:
    filters = _resolve(xobject.get("/Filter"))
    if filters is None:
        return []
    return [str(_resolve(name)) for name in (filters if isinstance(filters, list) else [filters])]


def _components(space: Any, depth: int = 0) -> int | None:
    """Colour components of a colour space pagemill takes out as it is, else None."""
    space = _resolve(space)
    if depth > 2 or space is None:
        return None
    if isinstance(space, str):
        return DEVICE_SPACES.get(str(space))
    if isinstance(space, list) and space:
        family = str(_resolve(space[0]))
        if family in ("/CalGray", "/CalRGB") or (family in DEVICE_SPACES and len(space) == 1):
            return DEVICE_SPACES[family]
        if family == "/ICCBased" and len(space) > 1:
            count = _int(_resolve(space[1]).get("/N")) if _is_dict(_resolve(space[1])) else 0
            return count if count in (1, 3, 4) else None
        if family in ("/Indexed", "/I") and len(space) == 4:
            return 1 if _components(space[1], depth + 1) is not None else None
    return None


def _is_indexed(space: Any) -> bool:
    space = _resolve(space)
    return isinstance(space, list) and bool(space) and str(_resolve(space[0])) in ("/Indexed", "/I")


def _crop_box(page: Any) -> tuple[float, float, float, float] | None:
    try:
        crop, media = page.cropbox, page.mediabox
        left, bottom = max(float(crop.left), float(media.left)), max(float(crop.bottom), float(media.bottom))
        right, top = min(float(crop.right), float(media.right)), min(float(crop.top), float(media.top))
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):
        return None
    return (left, bottom, right, top) if right > left and top > bottom else None


def _covers(matrix: Matrix, crop: tuple[float, float, float, float]) -> bool:
    a, b, c, d, e, f = matrix
    xs = [e, a + e, c + e, a + c + e]
    ys = [f, b + f, d + f, b + d + f]
    left, bottom, right, top = crop
    page_area = (right - left) * (top - bottom)
    drawn_area = (max(xs) - min(xs)) * (max(ys) - min(ys))
    overlap = max(0.0, min(max(xs), right) - max(min(xs), left)) * max(0.0, min(max(ys), top) - max(min(ys), bottom))
    return overlap >= SCAN_COVERAGE * page_area and drawn_area <= MAX_OVERHANG * page_area


def _on_screen(vector: tuple[float, float], rotation: int) -> tuple[int, int] | None:
    """A user-space direction as shown (page turned ``rotation``° clockwise), snapped to a quarter."""
    x, y = vector
    if not x and not y:
        return None
    angle = -math.degrees(math.atan2(y, x)) + rotation  # clockwise from the screen's x axis
    quarter = round(angle / 90.0)
    if abs(angle - quarter * 90.0) > MAX_SKEW_DEGREES:
        return None
    return _QUARTERS[quarter % 4]


def _multiply(m: Matrix, n: Matrix) -> Matrix:
    a1, b1, c1, d1, e1, f1 = m
    a2, b2, c2, d2, e2, f2 = n
    return (a1 * a2 + b1 * c2, a1 * b2 + b1 * d2, c1 * a2 + d1 * c2, c1 * b2 + d1 * d2,
            e1 * a2 + f1 * c2 + e2, e1 * b2 + f1 * d2 + f2)


def _numbers(operands: list[Any], count: int) -> Matrix:
    if len(operands) != count:
        raise ValueError(f"cm with {len(operands)} operands")
    values = tuple(float(value) for value in operands)
    if not all(math.isfinite(value) for value in values):
        raise ValueError("cm with a non-finite number")
    return values  # type: ignore[return-value]


def _resolve(value: Any) -> Any:
    return value.get_object() if hasattr(value, "get_object") else value


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _int(value: Any) -> int:
    try:
        return int(_resolve(value) or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
