"""PDFs written object by object, for the ingest tests: images placed by any matrix, page rotations,
image modes, invisible text, broken page trees and declared sizes that would be bombs.

``tests/pdf_fixtures.py`` makes the everyday files (reportlab text, Pillow scans, pypdf encryption);
these are the ones that need a hand on every byte.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

from engine.config import EngineConfig
from engine.records import Document

Matrix = tuple[float, float, float, float, float, float]


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF of the given object bodies (numbered from 1, the first one the catalog), xref and all."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def image_stream(image: Image.Image, jpeg: bool = False) -> bytes:
    """An image XObject for a PIL image in mode 1, L, RGB, CMYK or P (as /Indexed), Flate or JPEG."""
    if jpeg:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        data, filters = buffer.getvalue(), b"/DCTDecode"
    else:
        data, filters = zlib.compress(image.tobytes()), b"/FlateDecode"
    bits = 1 if image.mode == "1" else 8
    if image.mode == "P":
        palette = bytes(image.getpalette()[: 3 * 256]).ljust(3 * 256, b"\0")
        space = b"[/Indexed /DeviceRGB 255 <" + palette.hex().encode() + b">]"
    else:
        space = {"1": b"/DeviceGray", "L": b"/DeviceGray", "RGB": b"/DeviceRGB", "CMYK": b"/DeviceCMYK"}[image.mode]
    return stream(b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s /BitsPerComponent %d "
                  b"/Filter %s" % (image.width, image.height, space, bits, filters), data)


def numbers(values: tuple[float, ...]) -> bytes:
    return b" ".join(b"%g" % value for value in values)


def page_pdf(content: bytes, page_size: tuple[float, float] = (612, 792), rotate: int = 0,
             xobject: bytes | None = None, font: bool = False) -> bytes:
    """One page with the given content; ``xobject`` becomes /Im0, ``font`` adds Helvetica as /F1."""
    resources = b""
    if xobject is not None:
        resources += b"/XObject << /Im0 5 0 R >> "
    if font:
        resources += b"/Font << /F1 6 0 R >> "
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s] /Rotate %d /Resources << %s>> /Contents 4 0 R >>"
        % (numbers(page_size), rotate, resources),
        stream(b"", content),
        xobject if xobject is not None else b"null",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    return raw_pdf(objects)


def placed_image_pdf(image: Image.Image, matrix: Matrix, page_size: tuple[float, float], rotate: int = 0,
                     jpeg: bool = False, extra: bytes = b"", font: bool = False) -> bytes:
    """A page whose content draws ``image`` with the matrix ``matrix`` (then ``extra``)."""
    content = b"q " + numbers(matrix) + b" cm /Im0 Do Q\n" + extra
    return page_pdf(content, page_size, rotate, image_stream(image, jpeg), font)


def scan_pdf(image: Image.Image, rotate: int = 0, jpeg: bool = False, extra: bytes = b"", font: bool = False) -> bytes:
    """A plain scan: ``image`` filling a page of its own size in points."""
    width, height = image.size
    return placed_image_pdf(image, (width, 0, 0, height, 0, 0), (width, height), rotate, jpeg, extra, font)


def marked_image(size: tuple[int, int] = (320, 200), mode: str = "L") -> Image.Image:
    """An image no turn or mirror leaves unchanged: a block top left, a dot bottom right, a slope."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((10, 10, width // 3, height // 4), fill=0)
    draw.ellipse((width - 60, height - 50, width - 15, height - 10), fill=90)
    draw.line((0, height - 1, width - 1, height // 2), fill=30, width=4)
    return image if mode == "L" else image.convert(mode)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def document(path: Path) -> Document:
    data = path.read_bytes()
    return Document(str(path), hashlib.sha256(data).hexdigest(), len(data))


def ingest_and_load(path: Path, **config_values: object) -> tuple[list, list]:
    """(page tasks, page contents) of a file through the built-in ingest plugin."""
    import plugins.pdf_ingest as ingest

    config = EngineConfig(**config_values)
    tasks = ingest.pagemill_ingest(document(path), config)
    return tasks, [ingest.pagemill_load_page(task, config) for task in tasks]


IDENTITY_TO_UNICODE = (
    b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
    b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
    b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
    b"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
    b"1 beginbfrange\n<0000> <FFFF> <0000>\nendbfrange\n"
    b"endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
)


def ocr_layer_scan_pdf(image: Image.Image, lines: list[str], jpeg: bool = True) -> bytes:
    """A scan with an OCR text layer as OCRmyPDF grafts it: a form XObject drawn before the image,
    holding invisible text (render mode 3) in a two-byte glyphless font (Identity-H, ToUnicode)."""
    width, height = image.size
    text = b"".join(
        b"BT 3 Tr /f-0-0 10 Tf 1 0 0 1 40 %d Tm <%s> Tj ET\n" % (height - 60 - 20 * row, line.encode("utf-16-be").hex().encode())
        for row, line in enumerate(lines)
    )
    font_resources = b"/Font << /f-0-0 6 0 R >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R "
        b"/Resources << /XObject << /Im0 5 0 R /OCR-a1b2 7 0 R >> %s >> >>" % (width, height, font_resources),
        stream(b"", b"q 1 0 0 1 0 0 cm /OCR-a1b2 Do Q\nq %d 0 0 %d 0 0 cm /Im0 Do Q\n" % (width, height)),
        image_stream(image, jpeg),
        b"<< /Type /Font /Subtype /Type0 /BaseFont /GlyphLessFont /Encoding /Identity-H "
        b"/DescendantFonts [8 0 R] /ToUnicode 9 0 R >>",
        stream(b"/Type /XObject /Subtype /Form /FormType 1 /BBox [0 0 %d %d] /Resources << %s >>"
               % (width, height, font_resources), text),
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /GlyphLessFont /DW 500 /CIDToGIDMap /Identity "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> >>",
        stream(b"", IDENTITY_TO_UNICODE),
    ]
    return raw_pdf(objects)
