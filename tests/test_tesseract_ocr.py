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
from engine.errors import ConfigError, CriticalError
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


@pytest.mark.parametrize("psm", [0, 2, 14, -1])
def test_a_psm_that_gives_no_text_is_a_config_error_naming_the_modes(psm) -> None:
    with pytest.raises(ConfigError, match=r"psm must be 1 or 3 to 13, not -?[0-9]+ \(psm 0 only detects orientation"):
        EngineConfig.load(environ={}, psm=psm)
    with pytest.raises(ConfigError, match="psm"):
        EngineConfig.load(environ={"PAGEMILL_PSM": str(psm)})
    assert [EngineConfig.load(environ={}, psm=mode).psm for mode in (1, 3, 13)] == [1, 3, 13]


def test_psm_0_on_the_command_line_is_bad_usage_before_any_page(tmp_path, monkeypatch, capsys) -> None:
    from loguru import logger

    from engine.cli import main

    (tmp_path / "in").mkdir()
    text_image().save(tmp_path / "in" / "ticket.png")
    for name in [name for name in os.environ if name.startswith("PAGEMILL_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        code = main(["run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--psm", "0"])
    finally:
        logger.remove()
        logger.add(sys.stderr)
    err = capsys.readouterr().err
    assert code == 2
    assert "psm must be 1 or 3 to 13, not 0" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_blank_page_has_no_words(tesseract_available) -> None:
    result = tesseract_ocr.ocr_image(Image.new("L", (600, 400), 255))
    assert result.words == () and result.text == "" and result.mean_confidence == 0.0


TSV_HEADER = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"


def fake_tesseract(folder: Path, body: str) -> str:
    """An executable standing in for tesseract: a shell script with ``body``."""
    script = folder / "tesseract"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_importing_leaves_the_environment_alone() -> None:
    env = {key: value for key, value in os.environ.items() if key != "OMP_THREAD_LIMIT"}
    code = "import os, plugins.tesseract_ocr; print(os.environ.get('OMP_THREAD_LIMIT', 'unset'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "unset"


def test_tesseract_runs_single_threaded_even_when_the_host_says_otherwise(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OMP_THREAD_LIMIT", "4")
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", fake_tesseract(
        tmp_path, f'echo "$OMP_THREAD_LIMIT" > {tmp_path}/omp; cat > {tmp_path}/input; printf "{TSV_HEADER}\\n"'))
    result = tesseract_ocr.ocr_image(text_image())
    assert result.words == () and (tmp_path / "omp").read_text().strip() == "1"
    assert os.environ["OMP_THREAD_LIMIT"] == "4"
    assert Image.open(tmp_path / "input").size == (1100, 300)  # the image came on its standard input


def test_tesseract_failures_keep_their_status_and_message(tmp_path, monkeypatch) -> None:
    classify = tesseract_ocr.pagemill_classify_error
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", fake_tesseract(
        tmp_path, "cat > /dev/null; echo 'Error opening data file /x/eng.traineddata' >&2; exit 1"))
    with pytest.raises(pytesseract.TesseractError) as failed:
        tesseract_ocr.ocr_image(text_image())
    assert failed.value.status == 1 and "eng.traineddata" in failed.value.message
    assert classify(failed.value, "ocr", PAGE) == "critical"
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", fake_tesseract(tmp_path, "kill -9 $$"))
    with pytest.raises(pytesseract.TesseractError) as killed:
        tesseract_ocr.ocr_image(text_image())
    assert killed.value.status == -9 and classify(killed.value, "ocr", PAGE) == "transient"
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(tmp_path / "missing"))
    with pytest.raises(pytesseract.TesseractNotFoundError):
        tesseract_ocr.ocr_image(text_image())


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_worker_killed_mid_ocr_leaves_no_tesseract_and_no_file(tmp_path) -> None:
    import signal
    import time

    private_tmp, marks = tmp_path / "tmp", tmp_path / "marks"
    private_tmp.mkdir()
    marks.mkdir()
    command = fake_tesseract(marks, f"echo $$ > {marks}/pid.tmp; mv {marks}/pid.tmp {marks}/pid; exec sleep 60")
    code = (
        "import pytesseract, plugins.tesseract_ocr as ocr\n"
        f"pytesseract.pytesseract.tesseract_cmd = {command!r}\n"
        "from PIL import Image\n"
        "ocr.ocr_image(Image.new('L', (2550, 3300), 255))\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                              env=dict(os.environ, TMPDIR=str(private_tmp)))
    try:
        deadline = time.monotonic() + 20
        while not (marks / "pid").exists() and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.02)
        tesseract_pid = int((marks / "pid").read_text())
        os.kill(worker.pid, signal.SIGKILL)  # as the pool ends a worker past its page deadline
        worker.wait(10)
        deadline = time.monotonic() + 5
        while not _gone(tesseract_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        alive = not _gone(tesseract_pid)
        if alive:
            os.kill(tesseract_pid, signal.SIGKILL)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert not alive, "tesseract outlived the worker that started it"
    assert list(private_tmp.iterdir()) == []


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
