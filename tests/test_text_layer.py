"""Scan or text page: a scan with a scanner's printed stamp is OCR'd, an invisible OCR text layer over a
scan is used as the page's text, and so is the text of a real text PDF, through pypdf and through pdfium."""

from __future__ import annotations

import pytest
from ingest_builders import document, ingest_and_load, ocr_layer_scan_pdf, write
from pdf_fixtures import stamped_scan_pdf, text_pdf, ticket_image

import plugins.pdf_ingest as ingest
from engine.config import EngineConfig
from engine.errors import CorruptDocumentError
from engine.records import PageTask
from plugins import pdf_documents
from plugins.pdf_layout import PageLayout

STAMP = "Scanned 2025-01-06 by DMS Page 1 of 1 Batch 000123"
TICKET = "Ticket No.: 424242\nGross: 61,000 lb\nTare: 20,000 lb"
TEXT = "Ticket No.: 554433\nDate: 2026-03-14\nGross: 60,000 lb\nTare: 20,000 lb\nNet: 40,000 lb"
BODY = [f"Load {n}: Ticket No.: 5544{n:02d} Gross: 60,000 lb Tare: 20,000 lb Net: 40,000 lb" for n in range(14)]


@pytest.fixture
def pdfium_opened(monkeypatch) -> list[bytes]:
    opened: list[bytes] = []
    real = pdf_documents._open_pdfium
    monkeypatch.setattr(pdf_documents, "_open_pdfium", lambda data, password: opened.append(data[:8]) or real(data, password))
    return opened


@pytest.fixture(params=["pypdf", "pdfium"])
def parser(request, monkeypatch) -> str:
    """Each case through pypdf, then as a file pypdf cannot read (pdfium reads it instead)."""
    pdf_documents.clear_cache()
    if request.param == "pdfium":
        def unreadable(self):
            raise CorruptDocumentError("pypdf cannot read it: PdfReadError: broken")

        monkeypatch.setattr(pdf_documents.OpenPdf, "reader", unreadable)
    yield request.param
    pdf_documents.clear_cache()


def ticket_scan(size: tuple[int, int] = (1275, 1650)):
    return ticket_image(TICKET, size=size)


# ------------------------------------------------------------------ stamps
@pytest.mark.parametrize("page_size", [(612, 792), (216, 360)], ids=["letter", "receipt"])
def test_a_scan_with_a_printed_stamp_is_ocrd(tmp_path, parser, page_size) -> None:
    path = stamped_scan_pdf(tmp_path / "stamped.pdf", ticket_scan(), STAMP, page_size=page_size)
    tasks, contents = ingest_and_load(path, dpi=100)
    assert not tasks[0].has_text_layer
    assert contents[0].text is None and contents[0].source == "rendered"  # the scan and the stamp, drawn
    # an ingest that ran out of time flags the page "has text": load still sees the scan
    unsure = PageTask(str(path), tasks[0].sha256, 0, 1, "pdf", has_text_layer=True)
    content = ingest.pagemill_load_page(unsure, EngineConfig(dpi=100))
    assert content.text is None and content.source == "rendered"


def test_the_stamped_scan_reads_by_ocr(tmp_path, tesseract_available) -> None:
    from plugins.tesseract_ocr import ocr_image

    _, contents = ingest_and_load(stamped_scan_pdf(tmp_path / "stamped.pdf", ticket_scan(), STAMP), dpi=150)
    text = ocr_image(contents[0].image).text
    assert "424242" in text and "61,000" in text


# ----------------------------------------------------------- OCR text layers
def test_an_ocrmypdf_text_layer_over_a_scan_is_the_text(tmp_path, parser, pdfium_opened) -> None:
    lines = TICKET.splitlines()
    path = write(tmp_path / "ocred.pdf", ocr_layer_scan_pdf(ticket_scan(), lines))
    tasks, contents = ingest_and_load(path)
    assert tasks[0].has_text_layer and contents[0].source == "text-layer"
    assert all(line in contents[0].text for line in lines)
    if parser == "pypdf":
        assert pdfium_opened == []


def test_force_ocr_takes_the_scan_under_an_ocrmypdf_layer_as_stored(tmp_path, pdfium_opened) -> None:
    path = write(tmp_path / "ocred.pdf", ocr_layer_scan_pdf(ticket_scan(), TICKET.splitlines()))
    _, contents = ingest_and_load(path, force_ocr=True)
    assert contents[0].source == "embedded-image" and contents[0].image.size == (1275, 1650)
    assert pdfium_opened == []


# ------------------------------------------------------------------ text PDFs
def test_a_text_pdf_is_read_from_its_text_layer(tmp_path, parser) -> None:
    tasks, contents = ingest_and_load(text_pdf(tmp_path / "t.pdf", [TEXT]))
    assert tasks[0].has_text_layer and contents[0].source == "text-layer" and "554433" in contents[0].text


def test_text_over_a_full_page_background_image_is_a_text_page(tmp_path, parser) -> None:
    path = stamped_scan_pdf(tmp_path / "letterhead.pdf", ticket_scan(), "Page 1 of 1", text_lines=BODY)
    tasks, contents = ingest_and_load(path)
    assert tasks[0].has_text_layer and contents[0].source == "text-layer" and "554413" in contents[0].text


# ------------------------------------------------------------------- the rule
LETTER = 612.0 * 792.0


@pytest.mark.parametrize("layout, scan", [
    (PageLayout(LETTER, 1.0, 41, 1000.0, 0), True),  # a 7-pt stamp
    (PageLayout(LETTER, 1.0, 600, 900.0, 0), True),  # many characters, but tiny: a dense footer
    (PageLayout(LETTER, 1.0, 150, 30000.0, 0), True),  # large letters, few of them
    (PageLayout(LETTER, 1.0, 41, 1000.0, 400), False),  # an OCR layer under the stamp
    (PageLayout(LETTER, 1.0, 900, 40000.0, 0), False),  # a text page over a background
    (PageLayout(LETTER, 0.3, 41, 1000.0, 0), False),  # a logo and a short text
])
def test_what_counts_as_a_scan(layout, scan) -> None:
    assert layout.is_scan() is scan


def test_the_probe_keeps_its_cheap_answer_past_the_deadline(tmp_path) -> None:
    path = stamped_scan_pdf(tmp_path / "stamped.pdf", ticket_scan(), STAMP)
    reader = pdf_documents.open_pdf(str(path), document(path).sha256, None).reader()
    assert ingest._probe_text(reader, 0, deadline=0.0) is True  # unsure: load decides, as tested above


# ------------------------------------------------------------- text layout
def cells_pdf(path, rows: list[list[str]]):
    """A text PDF that draws every cell of a table on its own, as ticket printers' forms do."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=letter)
    for number, row in enumerate(rows):
        for column, cell in enumerate(row):
            pdf.drawString(40 + column * 110, 700 - number * 20, cell)
    pdf.showPage()
    pdf.save()
    return path


TABLE = [["Ticket No.: 31907"], ["Gross", "Tare", "Net", "Tons"], ["61,260", "27,900", "33,360", "16.68"]]


def test_a_text_layer_keeps_a_rows_cells_on_one_line(tmp_path, parser) -> None:
    from engine.records import OcrResult
    from plugins.template_extract import extract_fields, load_template

    _, contents = ingest_and_load(cells_pdf(tmp_path / "table.pdf", TABLE))
    lines = [line.split() for line in contents[0].text.splitlines()]
    assert ["Gross", "Tare", "Net", "Tons"] in lines and ["61,260", "27,900", "33,360", "16.68"] in lines
    text = contents[0].text
    found = {f.name: f.value for f in extract_fields(OcrResult(text, tuple(text.splitlines()), engine="text-layer"),
                                                     load_template("truck_ticket"))}
    assert found == {"ticket_number": "31907", "gross_lb": 61260, "tare_lb": 27900, "net_lb": 33360, "net_tons": 16.68}


class _Page:
    """A pypdf page whose layout mode fails, or reads less than its plain text."""

    def __init__(self, plain: str, layout: str | None) -> None:
        self.plain, self.layout = plain, layout

    def extract_text(self, extraction_mode: str = "plain", **options: object) -> str:
        if extraction_mode == "plain":
            return self.plain
        if self.layout is None:
            raise TypeError("extract_text() got an unexpected keyword argument 'extraction_mode'")
        return self.layout


def test_the_plain_text_when_the_layout_cannot_be_read_or_leaves_text_out() -> None:
    assert ingest._pypdf_text(_Page(TEXT, None)) == TEXT
    assert ingest._pypdf_text(_Page(TEXT, "Ticket No.: 554433\n\n   Gross: 60,000 lb   \n")) == TEXT  # a part dropped
    laid_out = ingest._pypdf_text(_Page(TEXT, TEXT.replace("\n", "\n\n  ") + "   \n"))
    assert laid_out == TEXT.replace("\n", "\n  ")  # blank lines and trailing spaces go
