"""Built-in OCR: tesseract through pytesseract, with words, lines and per-word confidences.

Tesseract's own threading is off in workers (``OMP_THREAD_LIMIT=1``): several single-threaded
tesseracts, one per worker, beat one multi-threaded tesseract by far.

The image reaches tesseract as a file: a scan's JPEG as it is stored (an :class:`EncodedImage`),
and a PIL image as an uncompressed PNM (about 3 ms a page, where the PNG pytesseract would write
costs about 90 ms and a JPEG would lose detail).

Page segmentation: ``--psm 6`` (one uniform block of text) is the default. On generated tickets it
reads label and value as one line in every layout; ``--psm 4`` (one column of variable sizes) is
as good on these, while ``--psm 3`` (automatic) and ``--psm 11`` (sparse text) split a label from
a value far to its right into separate blocks and lose a quarter of the fields.
"""

from __future__ import annotations

import os

os.environ["OMP_THREAD_LIMIT"] = "1"

import shutil
import tempfile
from typing import Any

import pytesseract
from PIL import Image

from engine import hookimpl
from engine.errors import CriticalError
from engine.records import EncodedImage, OcrResult, PageTask, Word

INSTALL_TESSERACT = "install it with `apt-get install -y tesseract-ocr`"
# messages of a tesseract that was stopped from outside (and may well succeed on another try)
TRANSIENT_MESSAGES = ("timeout", "killed", "signal", "resource temporarily unavailable", "cannot allocate")
# messages of a tesseract that cannot work at all (its data files are missing or broken)
CRITICAL_MESSAGES = ("error opening data file", "failed loading language", "could not initialize tesseract")


@hookimpl
def pagemill_preflight(config: Any) -> None:
    """The tesseract binary and every language of ``config.lang`` are installed."""
    if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
        raise CriticalError(f"tesseract not found: {INSTALL_TESSERACT}")
    try:
        installed = set(pytesseract.get_languages(config=""))
    except pytesseract.TesseractNotFoundError:
        raise CriticalError(f"tesseract not found: {INSTALL_TESSERACT}") from None
    except (OSError, RuntimeError) as exc:
        raise CriticalError(f"tesseract does not run ({exc}): reinstall it with "
                            "`apt-get install --reinstall -y tesseract-ocr`") from None
    missing = [lang for lang in config.lang.split("+") if lang and lang not in installed]
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang}" for lang in missing)
        raise CriticalError(
            f"tesseract language {', '.join(repr(lang) for lang in missing)} not installed "
            f"(installed: {', '.join(sorted(installed)) or 'none'}); install it with `apt-get install -y {packages}`"
        )


def _pnm_ready(image: Image.Image) -> Image.Image:
    """The image in a mode PNM stores (1, L or RGB); transparency goes onto white."""
    if image.mode in ("1", "L", "RGB"):
        return image
    if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode == "F":
        return image.convert("L")
    if image.mode.startswith("I"):  # 16- or 32-bit gray: scale 16-bit values to 8
        return image.point(lambda value: value / 256).convert("L")
    return image.convert("RGB")


def _tesseract_data(image: Any, lang: str, psm: int) -> dict[str, list[Any]]:
    options = f"--psm {psm}"
    if isinstance(image, EncodedImage):
        suffix, data = f".{image.format.lower()}", image.data
        with tempfile.NamedTemporaryFile(prefix="pagemill_", suffix=suffix) as handle:
            handle.write(data)
            handle.flush()
            return pytesseract.image_to_data(handle.name, lang=lang, config=options,
                                             output_type=pytesseract.Output.DICT)
    if isinstance(image, Image.Image):
        with tempfile.NamedTemporaryFile(prefix="pagemill_", suffix=".pnm") as handle:
            _pnm_ready(image).save(handle, "PPM")
            handle.flush()
            return pytesseract.image_to_data(handle.name, lang=lang, config=options,
                                             output_type=pytesseract.Output.DICT)
    return pytesseract.image_to_data(image, lang=lang, config=options, output_type=pytesseract.Output.DICT)


def ocr_image(image: Any, lang: str = "eng", psm: int = 6) -> OcrResult:
    """Words with confidences, grouped into lines (tesseract's block, paragraph, line) in reading order.

    ``image`` is a PIL image or an :class:`EncodedImage`, whose bytes go to tesseract as a file.
    Entries without a word (confidence -1: blocks, paragraphs, lines) and empty words are dropped.
    """
    data = _tesseract_data(image, lang, psm)
    line_words: list[list[str]] = []
    line_of_key: dict[tuple[int, int, int], int] = {}
    words: list[Word] = []
    for i, text in enumerate(data["text"]):
        confidence = float(data["conf"][i])
        text = str(text or "").strip()
        if confidence < 0 or not text:
            continue
        key = (int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i]))
        line = line_of_key.get(key)
        if line is None:
            line = line_of_key[key] = len(line_words)
            line_words.append([])
        line_words[line].append(text)
        words.append(Word(text, confidence, line, int(data["left"][i]), int(data["top"][i]),
                          int(data["width"][i]), int(data["height"][i])))
    lines = tuple(" ".join(texts) for texts in line_words)
    mean = sum(word.confidence for word in words) / len(words) if words else 0.0
    return OcrResult(text="\n".join(lines), lines=lines, words=tuple(words), mean_confidence=mean, engine="tesseract")


@hookimpl
def pagemill_ocr(page: PageTask, image: Any, config: Any) -> OcrResult:
    return ocr_image(image, config.lang, config.psm)


@hookimpl
def pagemill_classify_error(error: BaseException, stage: str, page: PageTask | None) -> str | None:
    """A missing binary is critical; a tesseract killed or timed out is transient; other failures permanent."""
    if isinstance(error, pytesseract.TesseractNotFoundError):
        return "critical"
    if isinstance(error, RuntimeError) and "timeout" in str(error).lower():  # pytesseract's own timeout
        return "transient"
    if isinstance(error, pytesseract.TesseractError):
        message = str(error.message if isinstance(error.message, str) else error).lower()
        if isinstance(error.status, int) and error.status < 0:  # ended by a signal (the OOM killer, a kill)
            return "transient"
        if any(words in message for words in TRANSIENT_MESSAGES):
            return "transient"
        if any(words in message for words in CRITICAL_MESSAGES):
            return "critical"
        return "permanent"
    return None
