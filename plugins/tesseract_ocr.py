"""Built-in OCR: tesseract through pytesseract, with words, lines and per-word confidences.

Tesseract's own threading is off in workers (``OMP_THREAD_LIMIT=1``): several single-threaded
tesseracts, one per worker, beat one multi-threaded tesseract by far.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import pytesseract  # noqa: E402

from engine import hookimpl  # noqa: E402
from engine.errors import CriticalError  # noqa: E402
from engine.records import EncodedImage, OcrResult, PageTask, Word  # noqa: E402


@hookimpl
def pagemill_preflight(config: Any) -> None:
    if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
        raise CriticalError("tesseract not found: install it with `apt-get install -y tesseract-ocr`")
    try:
        installed = set(pytesseract.get_languages(config=""))
    except Exception as exc:  # noqa: BLE001
        raise CriticalError(f"tesseract does not run: {exc}") from None
    for lang in config.lang.split("+"):
        if lang not in installed:
            raise CriticalError(
                f"tesseract language {lang!r} is not installed (have: {', '.join(sorted(installed))}); "
                f"install it with `apt-get install -y tesseract-ocr-{lang}`"
            )


def ocr_image(image: Any, lang: str = "eng", psm: int = 6) -> OcrResult:
    """Words with confidences, grouped into lines in reading order.

    ``image`` is a PIL image or an :class:`EncodedImage`, whose bytes go to tesseract as a file."""
    if isinstance(image, EncodedImage):
        with tempfile.NamedTemporaryFile(prefix="pagemill_", suffix=f".{image.format.lower()}") as handle:
            handle.write(image.data)
            handle.flush()
            data = pytesseract.image_to_data(handle.name, lang=lang, config=f"--psm {psm}",
                                             output_type=pytesseract.Output.DICT)
    else:
        data = pytesseract.image_to_data(image, lang=lang, config=f"--psm {psm}", output_type=pytesseract.Output.DICT)
    lines: list[list[tuple[str, float]]] = []
    line_keys: dict[tuple[int, int, int], int] = {}
    words: list[Word] = []
    for i, text in enumerate(data["text"]):
        confidence = float(data["conf"][i])
        text = (text or "").strip()
        if confidence < 0 or not text:
            continue
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        if key not in line_keys:
            line_keys[key] = len(lines)
            lines.append([])
        line = line_keys[key]
        lines[line].append((text, confidence))
        words.append(Word(text, confidence, line, data["left"][i], data["top"][i], data["width"][i], data["height"][i]))
    line_texts = tuple(" ".join(word for word, _ in line) for line in lines)
    mean = sum(w.confidence for w in words) / len(words) if words else 0.0
    return OcrResult(text="\n".join(line_texts), lines=line_texts, words=tuple(words), mean_confidence=mean,
                     engine="tesseract")


@hookimpl
def pagemill_ocr(page: PageTask, image: Any, config: Any) -> OcrResult:
    return ocr_image(image, config.lang, config.psm)


@hookimpl
def pagemill_classify_error(error: BaseException, stage: str, page: PageTask | None) -> str | None:
    if isinstance(error, pytesseract.TesseractNotFoundError):
        return "critical"
    if isinstance(error, RuntimeError) and "timeout" in str(error).lower():
        return "transient"
    if isinstance(error, pytesseract.TesseractError):
        message = str(error).lower()
        if "killed" in message or "signal" in message or "timeout" in message:
            return "transient"
        return "permanent"
    return None
