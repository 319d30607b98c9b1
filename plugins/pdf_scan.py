"""A scanned page's image, taken out of the PDF as it is stored instead of rendering the page.

A page counts as a plain scan when its content stream draws one image XObject and nothing else
that shows (invisible text, as an OCR layer is, may be there too, also inside forms) and the image
covers the page's crop box (:mod:`plugins.pdf_layout` measures the page). The image then goes to
OCR at its own resolution: no render, no resampling.

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
from plugins.pdf_layout import (
    MAX_FORM_DEPTH,
    Box,
    Matrix,
    as_int,
    content_bytes,
    corners,
    crop_box,
    is_dict,
    overlap,
    page_layout,
    resolve,
)

SCAN_COVERAGE = 0.9  # the image covers at least this share of the crop box
MAX_OVERHANG = 1.3  # and its drawn area is at most this many times the crop box
MAX_SKEW_DEGREES = 10.0
MAX_SCAN_CONTENT_BYTES = 512 * 1024  # a scan's content stream is short; a longer one is rendered

IMAGE_FILTERS = frozenset({
    "/FlateDecode", "/Fl", "/DCTDecode", "/DCT", "/CCITTFaxDecode", "/CCF", "/LZWDecode", "/LZW",
    "/RunLengthDecode", "/RL", "/ASCIIHexDecode", "/AHx", "/ASCII85Decode", "/A85", "/JPXDecode",
})
DEVICE_SPACES = {"/DeviceGray": 1, "/G": 1, "/CalGray": 1, "/DeviceRGB": 3, "/RGB": 3, "/CalRGB": 3,
                 "/DeviceCMYK": 4, "/CMYK": 4}

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
    resources = resolve(resources)
    if not is_dict(resources) or depth > MAX_FORM_DEPTH or id(resources) in seen:
        return
    seen.add(id(resources))
    xobjects = resolve(resources.get("/XObject"))
    if not is_dict(xobjects):
        return
    for name in list(xobjects.keys()):
        xobject = resolve(xobjects[name])
        if not is_dict(xobject):
            continue
        subtype = xobject.get("/Subtype")
        if subtype == "/Image":
            yield xobject
        elif subtype == "/Form":
            yield from image_xobjects(xobject.get("/Resources"), depth + 1, seen)


def check_page_images(page: Any, max_image_pixels: int) -> None:
    """PageTooLargeError for an image of the page over the limit, from ``/Width`` × ``/Height``."""
    for xobject in image_xobjects(page.get("/Resources")):
        width, height = as_int(xobject.get("/Width")), as_int(xobject.get("/Height"))
        check_pixels(width, height, max_image_pixels, "embedded image")


# ------------------------------------------------------------------- the scan
def find_scan(page: Any, reader: Any) -> PageScan | None:
    """The page's one full-page image and its turn, or None when the page is anything else."""
    if content_bytes(page, MAX_SCAN_CONTENT_BYTES) is None:
        return None
    layout = page_layout(page, reader)
    if layout is None or not layout.plain or len(layout.images) != 1 or layout.images[0].in_form:
        return None
    xobject, matrix = layout.images[0].xobject, layout.images[0].matrix
    if not _decodable(xobject):
        return None
    crop = crop_box(page)
    if crop is None or not _covers(matrix, crop):
        return None
    rotation = as_int(page.get("/Rotate")) % 360
    if rotation % 90:
        return None
    a, b, c, d, _, _ = matrix
    across = _on_screen((a, b), rotation)  # the image's x axis
    down = _on_screen((-c, -d), rotation)  # image rows run down from the top edge (unit y = 1)
    if across is None or down is None or (across, down) not in _TRANSPOSES:
        return None
    width_points = math.hypot(a, b)
    dpi = as_int(xobject.get("/Width")) * 72.0 / width_points if width_points else None
    return PageScan(xobject, _TRANSPOSES[(across, down)], round(dpi, 1) if dpi else None)


def scan_image(scan: PageScan, max_image_pixels: int) -> Image.Image | EncodedImage | None:
    """The image, upright, in mode L or RGB; a plain unturned JPEG as its bytes. None: render it."""
    xobject = scan.xobject
    width, height = as_int(xobject.get("/Width")), as_int(xobject.get("/Height"))
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


def _decodable(xobject: Any) -> bool:
    if xobject.get("/ImageMask") or "/SMask" in xobject or "/Mask" in xobject or "/Decode" in xobject:
        return False
    if as_int(xobject.get("/BitsPerComponent", 8)) not in (1, 2, 4, 8, 16):
        return False
    if not all(name in IMAGE_FILTERS for name in _filters(xobject)):
        return False
    return _components(xobject.get("/ColorSpace")) is not None


def _plain_jpeg(xobject: Any) -> bool:
    """A JPEG tesseract reads as it is: the only filter DCT, 8-bit gray or RGB."""
    return (
        _filters(xobject) in (["/DCTDecode"], ["/DCT"])
        and _components(xobject.get("/ColorSpace")) in (1, 3)
        and as_int(xobject.get("/BitsPerComponent", 8)) == 8
        and not _is_indexed(xobject.get("/ColorSpace"))
    )


def _filters(xobject: Any) -> list[str]:
    filters = resolve(xobject.get("/Filter"))
    if filters is None:
        return []
    return [str(resolve(name)) for name in (filters if isinstance(filters, list) else [filters])]


def _components(space: Any, depth: int = 0) -> int | None:
    """Colour components of a colour space pagemill takes out as it is, else None."""
    space = resolve(space)
    if depth > 2 or space is None:
        return None
    if isinstance(space, str):
        return DEVICE_SPACES.get(str(space))
    if isinstance(space, list) and space:
        family = str(resolve(space[0]))
        if family in ("/CalGray", "/CalRGB") or (family in DEVICE_SPACES and len(space) == 1):
            return DEVICE_SPACES[family]
        if family == "/ICCBased" and len(space) > 1:
            count = as_int(resolve(space[1]).get("/N")) if is_dict(resolve(space[1])) else 0
            return count if count in (1, 3, 4) else None
        if family in ("/Indexed", "/I") and len(space) == 4:
            return 1 if _components(space[1], depth + 1) is not None else None
    return None


def _is_indexed(space: Any) -> bool:
    space = resolve(space)
    return isinstance(space, list) and bool(space) and str(resolve(space[0])) in ("/Indexed", "/I")


def _covers(matrix: Matrix, crop: Box) -> bool:
    xs, ys = corners(matrix)
    left, bottom, right, top = crop
    page_area = (right - left) * (top - bottom)
    drawn_area = (max(xs) - min(xs)) * (max(ys) - min(ys))
    return overlap(matrix, crop) >= SCAN_COVERAGE * page_area and drawn_area <= MAX_OVERHANG * page_area


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
