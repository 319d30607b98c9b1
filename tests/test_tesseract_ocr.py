"""The OCR plugin alone: words, lines, confidences, image kinds, options, preflight, error classes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytesseract
import pytest
from PIL import Image, ImageDraw, ImageFont

from engine.config import EngineConfig
from engine.errors import CriticalError
from engine.records import EncodedImage, PageTask
from plugins import tesseract_ocr

PAGE = PageTask(document="x.pdf", sha256="0" * 64, index=0, page_count=1)
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
LINES = ("Ticket No.: 104857", "Gross: 72,340 kg", "Hauler: Delgado Hauling")


def text_image(lines=LINES, size=(1100, 300)) -> Image.Image:
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 40) if FONT.is_file() else ImageFont.load_default(size=40)
    for row, line in enumerate(lines):
        draw.text((40, 30 + row * 80), line, font=font, fill=0)
    return image


def test_words_lines_and_confidences(tesseract_available) -> None:
    result = tesseract_ocr.pagemill_ocr(PAGE, text_image(), EngineConfig())
    assert result.engine == "tesseract"
    assert result.lines == LINES
    assert result.text == "\n".join(result.lines)
    assert [w.line for w in result.words] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert " ".join(w.text for w in result.words if w.line == 1) == result.lines[1]
    assert all(0 <= w.confidence <= 100 for w in result.words)  # the -1 of blocks and lines are gone
    assert result.mean_confidence == pytest.approx(sum(w.confidence for w in result.words) / 9)
    assert result.mean_confidence > 80
    number = next(w for w in result.words if w.text == "104857")
    gross = next(w for w in result.words if w.text == "Gross:")
    assert number.left > gross.left and gross.top > number.top and number.width > 0 and number.height > 0


@pytest.mark.parametrize("mode", ["1", "RGB", "RGBA", "P", "I;16", "LA"])
def test_every_image_mode_reads_the_same(tesseract_available, mode) -> None:
    image = text_image()
    if mode == "I;16":
        converted = image.convert("I").point(lambda value: value * 256).convert("I;16")
    elif mode == "RGBA":
        converted = image.convert("RGBA")
        converted.putalpha(Image.new("L", image.size, 255))
    else:
        converted = image.convert(mode)
    assert tesseract_ocr.ocr_image(converted).lines == LINES


def test_encoded_jpeg_bytes_are_read_as_they_are(tesseract_available) -> None:
    buffer = io.BytesIO()
    text_image().save(buffer, "JPEG", quality=90)
    encoded = EncodedImage(buffer.getvalue(), "JPEG", 1100, 300)
    assert tesseract_ocr.ocr_image(encoded).lines == LINES


def test_psm_is_passed_to_tesseract(tesseract_available) -> None:
    image = text_image(("Ticket 104857", "Gross 72340"), size=(900, 220))
    assert len(tesseract_ocr.pagemill_ocr(PAGE, image, EngineConfig(psm=6)).lines) == 2
    assert len(tesseract_ocr.pagemill_ocr(PAGE, image, EngineConfig(psm=7)).lines) == 1  # one text line


def test_a_blank_page_has_no_words(tesseract_available) -> None:
    result = tesseract_ocr.ocr_image(Image.new("L", (600, 400), 255))
    assert result.words == () and result.text == "" and result.mean_confidence == 0.0


def test_tesseract_threading_is_forced_off_even_when_set() -> None:
    env = dict(os.environ, OMP_THREAD_LIMIT="4")
    code = "import os, plugins.tesseract_ocr; print(os.environ['OMP_THREAD_LIMIT'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "1"


def test_preflight_names_the_missing_language(tesseract_available) -> None:
    tesseract_ocr.pagemill_preflight(EngineConfig())
    with pytest.raises(CriticalError, match=r"apt-get install -y tesseract-ocr-klingon`") as raised:
        tesseract_ocr.pagemill_preflight(EngineConfig(lang="eng+klingon"))
    assert "'klingon'" in str(raised.value) and "eng" in str(raised.value)


def test_preflight_without_the_binary(monkeypatch) -> None:
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(CriticalError, match=r"tesseract not found: install it with `apt-get install -y tesseract-ocr`"):
        tesseract_ocr.pagemill_preflight(EngineConfig())


def test_error_classes() -> None:
    classify = tesseract_ocr.pagemill_classify_error
    assert classify(pytesseract.TesseractNotFoundError(), "ocr", PAGE) == "critical"
    assert classify(pytesseract.TesseractError(-9, ""), "ocr", PAGE) == "transient"  # killed by a signal
    assert classify(pytesseract.TesseractError(1, "process killed"), "ocr", PAGE) == "transient"
    assert classify(RuntimeError("Tesseract process timeout"), "ocr", PAGE) == "transient"
    assert classify(pytesseract.TesseractError(1, "Error opening data file eng.traineddata"), "ocr", PAGE) == "critical"
    assert classify(pytesseract.TesseractError(1, "Image too small to scale"), "ocr", PAGE) == "permanent"
    assert classify(ValueError("x"), "ocr", PAGE) is None
