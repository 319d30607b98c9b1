"""The OCR plugin alone: words, lines, confidences; preflight; error classes."""

from __future__ import annotations

import pytesseract
import pytest
from pdf_fixtures import ticket_image

from engine.config import EngineConfig
from engine.errors import CriticalError
from engine.records import PageTask
from plugins import tesseract_ocr

PAGE = PageTask(document="x.pdf", sha256="0" * 64, index=0, page_count=1)


def test_words_lines_and_confidences(tesseract_available) -> None:
    image = ticket_image("Ticket No.: 104857\nGross: 72,340 lb\nTare: 31,120 lb")
    result = tesseract_ocr.pagemill_ocr(PAGE, image, EngineConfig())
    assert result.engine == "tesseract"
    assert len(result.lines) == 3 and "104857" in result.lines[0] and "31,120" in result.lines[2]
    assert result.text == "\n".join(result.lines)
    assert {w.line for w in result.words} == {0, 1, 2}
    assert all(0 <= w.confidence <= 100 for w in result.words)
    assert result.mean_confidence > 60
    number = next(w for w in result.words if w.text == "104857")
    assert number.width > 0 and number.left > 0


def test_tesseract_threading_is_off_in_workers() -> None:
    import os

    assert os.environ.get("OMP_THREAD_LIMIT") == "1"


def test_preflight_names_the_missing_language(tesseract_available) -> None:
    tesseract_ocr.pagemill_preflight(EngineConfig())
    with pytest.raises(CriticalError, match="apt-get install -y tesseract-ocr-klingon"):
        tesseract_ocr.pagemill_preflight(EngineConfig(lang="eng+klingon"))


def test_preflight_without_the_binary(monkeypatch) -> None:
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(CriticalError, match="apt-get install -y tesseract-ocr"):
        tesseract_ocr.pagemill_preflight(EngineConfig())


def test_error_classes() -> None:
    classify = tesseract_ocr.pagemill_classify_error
    assert classify(pytesseract.TesseractNotFoundError(), "ocr", PAGE) == "critical"
    assert classify(pytesseract.TesseractError(-9, "killed by signal"), "ocr", PAGE) == "transient"
    assert classify(pytesseract.TesseractError(1, "cannot read image"), "ocr", PAGE) == "permanent"
    assert classify(ValueError("x"), "ocr", PAGE) is None
