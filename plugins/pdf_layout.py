"""What a PDF page draws, measured cheaply: where its images lie, how much text it shows, and whether
that text is visible. Tells a scan from a page with a real text layer.

A scan is a page mostly covered by images (``SCAN_IMAGE_SHARE`` of its crop box) whose visible text is
small: fewer than ``MIN_CHARS_PER_SQUARE_INCH`` characters for its size, or glyphs covering less than
``MIN_TEXT_SHARE`` of it. That is a scanner's stamp ("Scanned 2025-01-06 by DMS Page 1 of 1"), a
page number or a Bates number over the picture of a ticket; its few characters say nothing of the
ticket, so the page is OCR'd. Invisible text over the image (render mode 3 or 7) is an OCR layer,
as OCRmyPDF and scanners write it: from ``MIN_TEXT_CHARS`` characters on, it is the page's text.

The measures come from the content stream (pypdf's parser, forms followed ``MAX_FORM_DEPTH`` deep,
``MAX_LAYOUT_CONTENT_BYTES`` at most) or, for a file pypdf cannot read, from pdfium's page objects
and characters. A glyph's area is estimated as half an em wide by an em high.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MIN_TEXT_CHARS = 20  # printable, non-space characters that make a text layer usable
SCAN_IMAGE_SHARE = 0.5  # images cover at least this share of the page: it may be a scan
MIN_CHARS_PER_SQUARE_INCH = 2.0  # visible text over a scan: about 190 characters on a letter page
MIN_TEXT_SHARE = 0.03  # and its glyphs cover at least this share of the page
GLYPH_ASPECT = 0.5  # an average glyph is about half an em wide
MAX_LAYOUT_CONTENT_BYTES = 1024 * 1024  # page and forms; a longer page is no plain scan
MAX_FORM_DEPTH = 8
MAX_PDFIUM_CHARS = 20_000  # a page with more characters is a text page, whatever lies under it
INVISIBLE_TEXT_MODES = frozenset({3, 7})
TEXT_SHOWING = frozenset({b"Tj", b"TJ", b"'", b'"'})
# operators that show nothing by themselves: state, text state, colours, path construction
# (a path shows only once painted), clipping, marked content, compatibility sections
SILENT = frozenset(
    b"q Q cm gs ri i w J j M d BT ET Tf Tm Td TD T* Tc Tw Tz TL Ts Tr cs CS sc scn SC SCN g G rg RG k K "
    b"m l c v y h re n W W* BMC BDC EMC MP DP BX EX".split()
)

Matrix = tuple[float, float, float, float, float, float]
Box = tuple[float, float, float, float]  # left, bottom, right, top
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


@dataclass(frozen=True)
class PlacedImage:
    xobject: Any  # the image XObject (None for an inline image)
    matrix: Matrix  # maps the unit square onto the page
    in_form: bool


@dataclass(frozen=True)
class PageLayout:
    """What a page shows, in numbers."""

    page_area: float  # the crop box, in square points
    image_share: float  # of the page covered by images (0..1; overlapping images counted twice)
    visible_chars: int
    visible_text_area: float  # square points, estimated
    invisible_chars: int
    images: tuple[PlacedImage, ...] = ()
    plain: bool = False  # nothing shows but images and invisible text (no painting, no visible text)

    def is_scan(self) -> bool:
        """Mostly image, no OCR layer, and too little visible text to be the page's text."""
        if self.image_share < SCAN_IMAGE_SHARE or self.invisible_chars >= MIN_TEXT_CHARS:
            return False
        square_inches = self.page_area / (72.0 * 72.0)
        return (self.visible_chars < MIN_CHARS_PER_SQUARE_INCH * square_inches
                or self.visible_text_area < MIN_TEXT_SHARE * self.page_area)


# -------------------------------------------------------------------- pypdf
def page_layout(page: Any, reader: Any) -> PageLayout | None:
    """The layout of a pypdf page; None when its content is too long to measure or has no crop box."""
    crop = crop_box(page)
    if crop is None:
        return None
    walk = _Walk(reader, crop)
    if not walk.run(page, resolve(page.get("/Resources")), IDENTITY, 0):
        return None
    left, bottom, right, top = crop
    area = (right - left) * (top - bottom)
    return PageLayout(area, min(1.0, walk.image_area / area), walk.visible_chars, walk.visible_area,
                      walk.invisible_chars, tuple(walk.images), walk.plain)


class _Walk:
    """One pass over a page's content stream and the forms it draws."""

    def __init__(self, reader: Any, crop: Box) -> None:
        self.reader, self.crop = reader, crop
        self.budget = MAX_LAYOUT_CONTENT_BYTES
        self.images: list[PlacedImage] = []
        self.image_area = self.visible_area = 0.0
        self.visible_chars = self.invisible_chars = 0
        self.plain = True

    def run(self, owner: Any, resources: Any, ctm: Matrix, depth: int) -> bool:
        """Walk ``owner``'s content (a page or a form); False when over the byte budget."""
        from pypdf.generic import ContentStream, DecodedStreamObject

        data = content_bytes(owner, self.budget)
        if data is None:
            return False
        self.budget -= len(data)
        stream = DecodedStreamObject()
        stream.set_data(data)
        fonts = resolve(resources.get("/Font")) if is_dict(resources) else None
        xobjects = resolve(resources.get("/XObject")) if is_dict(resources) else None
        # graphics state saved by q: matrix, text render mode, font size, two-byte font
        state: tuple[Matrix, int, float, bool] = (ctm, 0, 0.0, False)
        stack: list[tuple[Matrix, int, float, bool]] = []
        text_matrix = IDENTITY
        for operands, operator in ContentStream(stream, self.reader).operations:
            ctm, mode, size, wide = state
            if operator == b"q":
                stack.append(state)
            elif operator == b"Q":
                state = stack.pop() if stack else state
            elif operator == b"cm":
                state = (multiply(numbers(operands, 6), ctm), mode, size, wide)
            elif operator == b"BT":
                text_matrix = IDENTITY
            elif operator == b"Tm":
                text_matrix = numbers(operands, 6)
            elif operator == b"Tf" and len(operands) == 2:
                state = (ctm, mode, _float(operands[1]), _two_byte(fonts, operands[0]))
            elif operator == b"Tr" and operands:
                state = (ctm, as_int(operands[0]), size, wide)
            elif operator in TEXT_SHOWING:
                self._text(operands, operator, multiply(text_matrix, ctm), mode, size, wide)
            elif operator == b"Do" and operands:
                if not self._draw(resolve(xobjects.get(operands[0])) if is_dict(xobjects) else None,
                                  resources, ctm, depth):
                    return False
            elif operator == b"INLINE IMAGE":
                self._image(None, ctm, depth > 0)
                self.plain = False
            elif operator not in SILENT:
                self.plain = False  # painting, shading, Type 3 glyphs, unknown operators
        return True

    def _text(self, operands: list[Any], operator: bytes, matrix: Matrix, mode: int, size: float, wide: bool) -> None:
        strings = operands[-1] if operator == b"TJ" and operands and isinstance(operands[-1], list) else operands[-1:]
        chars = sum(_char_count(value, wide) for value in strings if not isinstance(value, (int, float)))
        if mode in INVISIBLE_TEXT_MODES:
            self.invisible_chars += chars
            return
        self.plain = False
        a, b, c, d, _, _ = matrix
        height = abs(size) * math.sqrt(abs(a * d - b * c))
        self.visible_chars += chars
        self.visible_area += chars * height * height * GLYPH_ASPECT

    def _draw(self, xobject: Any, resources: Any, ctm: Matrix, depth: int) -> bool:
        subtype = xobject.get("/Subtype") if is_dict(xobject) else None
        if subtype == "/Image":
            self._image(xobject, ctm, depth > 0)
        elif subtype == "/Form" and depth < MAX_FORM_DEPTH:
            matrix = resolve(xobject.get("/Matrix"))
            form_ctm = multiply(numbers(matrix, 6), ctm) if isinstance(matrix, list) else ctm
            inner = resolve(xobject.get("/Resources"))
            return self.run(xobject, inner if is_dict(inner) else resources, form_ctm, depth + 1)
        else:
            self.plain = False  # a missing XObject, a form too deep, PostScript
        return True

    def _image(self, xobject: Any, ctm: Matrix, in_form: bool) -> None:
        self.images.append(PlacedImage(xobject, ctm, in_form))
        self.image_area += overlap(ctm, self.crop)


def _char_count(value: Any, wide: bool) -> int:
    raw = getattr(value, "original_bytes", None)
    if raw is None:
        raw = bytes(value) if isinstance(value, (bytes, bytearray)) else str(value).encode("latin-1", "replace")
    if wide:
        return len(raw) // 2
    return sum(1 for byte in raw if byte > 0x20)


def _two_byte(fonts: Any, name: Any) -> bool:
    font = resolve(fonts.get(name)) if is_dict(fonts) else None
    return is_dict(font) and font.get("/Subtype") == "/Type0"


# -------------------------------------------------------------------- pdfium
def pdfium_layout(page: Any, textpage: Any) -> PageLayout:
    """The layout of a pdfium page (for files pypdf cannot read), from its objects and characters."""
    import pypdfium2.raw as raw

    left, bottom, right, top = (float(value) for value in page.get_cropbox())
    crop = (left, bottom, right, top)
    area = max(1e-9, (right - left) * (top - bottom))
    image_area = 0.0
    for image in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=MAX_FORM_DEPTH):
        x0, y0, x1, y1 = image.get_bounds()
        image_area += overlap((x1 - x0, 0.0, 0.0, y1 - y0, x0, y0), crop)
    count = textpage.count_chars()
    if count > MAX_PDFIUM_CHARS:
        return PageLayout(area, min(1.0, image_area / area), count, area, 0)
    visible = invisible = 0
    visible_area = 0.0
    for index in range(count):
        if chr(raw.FPDFText_GetUnicode(textpage, index) or 32).isspace():
            continue
        text_object = raw.FPDFText_GetTextObject(textpage, index)
        if text_object and raw.FPDFTextObj_GetTextRenderMode(text_object) in INVISIBLE_TEXT_MODES:
            invisible += 1
            continue
        visible += 1
        x0, y0, x1, y1 = textpage.get_charbox(index)
        visible_area += abs((x1 - x0) * (y1 - y0))
    return PageLayout(area, min(1.0, image_area / area), visible, visible_area, invisible)


# -------------------------------------------------------------------- helpers
def content_bytes(owner: Any, limit: int) -> bytes | None:
    """The content of a page (its streams joined) or a form; None when longer than ``limit``."""
    contents = resolve(owner.get("/Contents")) if owner.get("/Subtype") != "/Form" else owner
    if contents is None:
        return b""
    streams = contents if isinstance(contents, list) else [contents]
    parts: list[bytes] = []
    total = 0
    for stream in streams:
        stream = resolve(stream)
        if not hasattr(stream, "get_data"):
            continue
        data = stream.get_data()
        total += len(data)
        if total > limit:
            return None
        parts.append(data)
    return b"\n".join(parts)


def crop_box(page: Any) -> Box | None:
    """The visible part of the page: its crop box within its media box."""
    try:
        crop, media = page.cropbox, page.mediabox
        left, bottom = max(float(crop.left), float(media.left)), max(float(crop.bottom), float(media.bottom))
        right, top = min(float(crop.right), float(media.right)), min(float(crop.top), float(media.top))
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):
        return None
    return (left, bottom, right, top) if right > left and top > bottom else None


def corners(matrix: Matrix) -> tuple[list[float], list[float]]:
    """The x and y of the unit square's corners placed by ``matrix``."""
    a, b, c, d, e, f = matrix
    return [e, a + e, c + e, a + c + e], [f, b + f, d + f, b + d + f]


def overlap(matrix: Matrix, box: Box) -> float:
    """The area of the placed unit square's bounding box that lies within ``box``."""
    xs, ys = corners(matrix)
    left, bottom, right, top = box
    return (max(0.0, min(max(xs), right) - max(min(xs), left))
            * max(0.0, min(max(ys), top) - max(min(ys), bottom)))


def multiply(m: Matrix, n: Matrix) -> Matrix:
    a1, b1, c1, d1, e1, f1 = m
    a2, b2, c2, d2, e2, f2 = n
    return (a1 * a2 + b1 * c2, a1 * b2 + b1 * d2, c1 * a2 + d1 * c2, c1 * b2 + d1 * d2,
            e1 * a2 + f1 * c2 + e2, e1 * b2 + f1 * d2 + f2)


def numbers(operands: list[Any], count: int) -> Matrix:
    if len(operands) != count:
        raise ValueError(f"a matrix of {len(operands)} numbers")
    values = tuple(float(resolve(value)) for value in operands)
    if not all(math.isfinite(value) for value in values):
        raise ValueError("a matrix with a non-finite number")
    return values  # type: ignore[return-value]


def resolve(value: Any) -> Any:
    return value.get_object() if hasattr(value, "get_object") else value


def is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def as_int(value: Any) -> int:
    try:
        return int(resolve(value) or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: Any) -> float:
    try:
        number = float(resolve(value) or 0)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return number if math.isfinite(number) else 0.0
