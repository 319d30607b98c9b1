"""PDF and image fixtures, made in the tests (reportlab for text, pillow for scans, pypdf for
encryption and broken structures)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def text_pdf(path: Path, pages: list[str]) -> Path:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=letter)
    for text in pages:
        y = 700
        for line in text.splitlines():
            pdf.drawString(72, y, line)
            y -= 18
        pdf.showPage()
    pdf.save()
    return path


def vector_pdf(path: Path) -> Path:
    """A page with drawings only: no text layer, no image; it must be rendered."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=letter)
    pdf.rect(72, 72, 300, 200, fill=1)
    pdf.showPage()
    pdf.save()
    return path


def ticket_image(text: str = "Ticket No.: 123456\nGross: 60,000 lb", size=(1275, 825)) -> Image.Image:
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 40) if Path(FONT).exists() else ImageFont.load_default(size=40)
    for row, line in enumerate(text.splitlines()):
        draw.text((60, 60 + row * 70), line, font=font, fill=0)
    return image


def scanned_pdf(path: Path, images: list[Image.Image], dpi: int = 150) -> Path:
    images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=dpi)
    return path


def rotated_scanned_pdf(path: Path, image: Image.Image, rotate: int) -> Path:
    """A scan stored sideways with /Rotate set so that it displays upright."""
    buffer = io.BytesIO()
    image.rotate(rotate, expand=True).save(buffer, "PDF", resolution=150)
    reader = PdfReader(buffer)
    writer = PdfWriter()
    page = writer.add_page(reader.pages[0])
    page[NameObject("/Rotate")] = __import__("pypdf").generic.NumberObject(rotate)
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def encrypted_pdf(source: Path, path: Path, password: str) -> Path:
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(password, algorithm="AES-256")
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def zero_page_pdf(path: Path) -> Path:
    writer = PdfWriter()
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def page_tree_loop_pdf(path: Path) -> Path:
    """A PDF whose /Pages node lists itself as a kid: a naive reader loops forever."""
    path.write_bytes(
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [2 0 R] /Count 1 >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )
    return path


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims a huge size (tiny on disk: one colour compresses to nothing)."""
    Image.new("1", (width, height), 1).save(path, "PNG")
    return path


def stamped_scan_pdf(path: Path, image: Image.Image, stamp: str, font_size: float = 7,
                     page_size: tuple[float, float] = (612, 792), text_lines: list[str] | None = None) -> Path:
    """A scan filling the page with a line of visible text over it (a scanner's stamp); with
    ``text_lines``, the image is a background under lines of real text as well."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    buffer.seek(0)
    pdf = canvas.Canvas(str(path), pagesize=page_size)
    pdf.drawImage(ImageReader(buffer), 0, 0, width=page_size[0], height=page_size[1])
    pdf.setFont("Helvetica", font_size)
    pdf.drawString(12, 8, stamp)
    pdf.setFont("Helvetica", 11)
    for row, line in enumerate(text_lines or []):
        pdf.drawString(72, page_size[1] - 90 - 16 * row, line)
    pdf.showPage()
    pdf.save()
    return path
