"""Built-in OCR: tesseract, with words, lines and per-word confidences.

Tesseract's own threading is off (``OMP_THREAD_LIMIT=1`` in its environment, never in ours):
several single-threaded tesseracts, one per worker, beat one multi-threaded tesseract by far.

No files. The image reaches tesseract on its standard input and the TSV comes back on its
standard output (``tesseract stdin stdout ... tsv``): a scan's JPEG as it is stored (an
:class:`EncodedImage`), a PIL image as a PackBits TIFF (about 4 ms and 0.2 MB for a 300-DPI
letter page; tesseract reads its standard input byte by byte, so the 8 MB of an uncompressed PNM
cost it about 0.1 s more, a PNG costs 35 to 90 ms to write, and a JPEG would lose detail). A
worker killed mid-page (its page timeout, kill -9) leaves no image or output file behind in the
temporary folder, and on Linux its tesseract is killed with it (``PR_SET_PDEATHSIG``) instead of
running on as an orphan. pytesseract is kept for its error types and the language list.

Page segmentation: ``--psm 6`` (one uniform block of text) is the default. On generated tickets it
reads label and value as one line in every layout; ``--psm 4`` (one column of variable sizes) is
as good on these, while ``--psm 3`` (automatic) and ``--psm 11`` (sparse text) split a label from
a value far to its right into separate blocks and lose a quarter of the fields. Modes 0 (orientation
and script only) and 2 (not implemented by tesseract) give no text: the configuration refuses them
(:meth:`engine.config.EngineConfig.validate`), so that no run starts to fail on every page.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import io
import os
import shutil
import signal
import subprocess
import sys
from typing import Any, Callable

import pytesseract
from PIL import Image

from engine import hookimpl
from engine.errors import CriticalError
from engine.records import EncodedImage, OcrResult, PageTask, Word

TSV_COLUMNS = ("level", "page_num", "block_num", "par_num", "line_num", "word_num",
               "left", "top", "width", "height", "conf", "text")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
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


def _tesseract_ready(image: Image.Image) -> Image.Image:
    """The image in a mode tesseract reads as it is (1, L or RGB); transparency goes onto white."""
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


def _image_bytes(image: Any) -> bytes:
    """What tesseract reads on its standard input: a stored JPEG as it is, a PIL image as TIFF."""
    if isinstance(image, EncodedImage):
        return image.data
    if not isinstance(image, Image.Image):
        image, _ = pytesseract.pytesseract.prepare(image)  # numpy arrays and the like
    buffer = io.BytesIO()
    _tesseract_ready(image).save(buffer, "TIFF", compression="packbits")
    return buffer.getvalue()


@functools.cache
def _prctl() -> Any:
    return ctypes.CDLL(None, use_errno=True).prctl


def _dies_with_us() -> Callable[[], None] | None:
    """For the child, before it runs tesseract: be killed when the thread that started it dies.

    A worker past its page deadline is killed (SIGKILL), and nothing then ends its tesseract;
    the kernel does, on Linux. The child runs nothing else before it becomes tesseract.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent, prctl = os.getpid(), _prctl()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def _run_tesseract(data: bytes, lang: str, psm: int) -> str:
    """tesseract's TSV for an encoded image, with no file on either side."""
    command = [pytesseract.pytesseract.tesseract_cmd, "stdin", "stdout", "-l", lang, "--psm", str(psm), "tsv"]
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, "OMP_THREAD_LIMIT": "1"}, preexec_fn=_dies_with_us())
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EACCES):
            raise pytesseract.TesseractNotFoundError() from None
        raise
    try:
        out, err = process.communicate(data)
    except BaseException:  # interrupted while tesseract runs: it must not outlive the page
        process.kill()
        process.wait()
        raise
    if process.returncode:
        raise pytesseract.TesseractError(process.returncode, " ".join(err.decode("utf-8", "replace").split()))
    return out.decode("utf-8", "replace")


def _tsv_rows(tsv: str) -> list[dict[str, str]]:
    """tesseract's TSV as rows by column name, after checking its header."""
    lines = tsv.splitlines()
    if not lines or tuple(lines[0].split("\t")) != TSV_COLUMNS:
        raise pytesseract.TesseractError(1, f"unexpected tesseract output: {tsv[:80]!r}")
    return [dict(zip(TSV_COLUMNS, line.split("\t", len(TSV_COLUMNS) - 1))) for line in lines[1:] if line]


def ocr_image(image: Any, lang: str = "eng", psm: int = 6) -> OcrResult:
    """Words with confidences, grouped into lines (tesseract's block, paragraph, line) in reading order.

    ``image`` is a PIL image or an :class:`EncodedImage`, whose bytes go to tesseract as they are.
    Entries without a word (confidence -1: blocks, paragraphs, lines) and empty words are dropped.
    """
    line_words: list[list[str]] = []
    line_of_key: dict[tuple[int, int, int], int] = {}
    words: list[Word] = []
    for row in _tsv_rows(_run_tesseract(_image_bytes(image), lang, psm)):
        confidence = float(row["conf"])
        text = row.get("text", "").strip()
        if confidence < 0 or not text:
            continue
        key = (int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
        line = line_of_key.get(key)
        if line is None:
            line = line_of_key[key] = len(line_words)
            line_words.append([])
        line_words[line].append(text)
        words.append(Word(text, confidence, line, int(row["left"]), int(row["top"]),
                          int(row["width"]), int(row["height"])))
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
