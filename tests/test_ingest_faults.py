"""Damaged input, page by page: a multi-frame TIFF cut short keeps the frames that read, a PDF whose
page tree loops is one error line; and ingest leaves a host program's pypdf logging as it found it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ingest_builders import document, write
from loguru import logger
from pdf_fixtures import page_tree_loop_pdf, text_pdf, ticket_image
from PIL import Image, ImageChops

import plugins.pdf_ingest as ingest
from engine.config import EngineConfig
from engine.errors import CorruptDocumentError

ROOT = Path(__file__).resolve().parents[1]


def tiff_bytes(count: int, compression: str | None) -> tuple[list[Image.Image], bytes]:
    frames = [ticket_image(f"Ticket No.: {n}") for n in range(1, count + 1)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:], compression=compression)
    return frames, buffer.getvalue()


@pytest.fixture
def warnings_logged():
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    yield messages
    logger.remove(sink)


# ----------------------------------------------------------------- TIFF frames
@pytest.mark.parametrize("compression", ["tiff_lzw", "tiff_deflate", None])
def test_a_tiff_cut_short_keeps_its_readable_frames(tmp_path, compression) -> None:
    frames, whole = tiff_bytes(2, compression)
    cut = write(tmp_path / "cut.tif", whole[: len(whole) * 2 // 3])
    config = EngineConfig()
    tasks = ingest.pagemill_ingest(document(cut), config)
    assert [(t.index, t.page_count, t.kind) for t in tasks] == [(0, 2, "image"), (1, 2, "image")]
    first = ingest.pagemill_load_page(tasks[0], config)
    assert ImageChops.difference(first.image, frames[0]).getbbox() is None
    with pytest.raises(CorruptDocumentError, match=r"frame 2") as failed:
        ingest.pagemill_load_page(tasks[1], config)
    assert "\n" not in str(failed.value)


def test_when_the_frame_count_is_lost_the_message_says_so(tmp_path) -> None:
    _, whole = tiff_bytes(3, "tiff_lzw")
    cut = write(tmp_path / "cut.tif", whole[: len(whole) // 2])  # frame 2's directory is gone, and the chain
    tasks = ingest.pagemill_ingest(document(cut), EngineConfig())
    assert len(tasks) == 2 and tasks[-1].page_count == 2
    with pytest.raises(CorruptDocumentError) as failed:
        ingest.pagemill_load_page(tasks[-1], EngineConfig())
    message = str(failed.value)
    assert message.startswith("frame 2 cannot be found") and "cut short" in message and "frames after it" in message


def test_a_whole_tiff_is_unchanged(tmp_path) -> None:
    frames, whole = tiff_bytes(3, "tiff_lzw")
    tasks = ingest.pagemill_ingest(document(write(tmp_path / "t.tif", whole)), EngineConfig())
    assert [t.page_count for t in tasks] == [3, 3, 3]


# ------------------------------------------------------------ a looping page tree
def test_a_looping_page_tree_is_one_error_and_no_warning(tmp_path, warnings_logged) -> None:
    path = page_tree_loop_pdf(tmp_path / "loop.pdf")
    config = EngineConfig()
    tasks = ingest.pagemill_ingest(document(path), config)  # pdfium counts one page: no failure yet
    with pytest.raises(CorruptDocumentError) as failed:
        ingest.pagemill_load_page(tasks[0], config)
    assert warnings_logged == []
    message = str(failed.value)  # why pypdf gave up and why pdfium did, in one line
    assert "pypdf cannot read it" in message and "pdfium cannot render the page" in message and "\n" not in message


def test_an_archive_with_a_loop_and_a_cut_tiff_prints_one_line_per_problem(tmp_path, tesseract_available) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    page_tree_loop_pdf(archive / "loop.pdf")
    _, whole = tiff_bytes(2, "tiff_lzw")
    (archive / "cut.tif").write_bytes(whole[: len(whole) * 2 // 3])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(archive), "--out", str(tmp_path / "out"),
                           "--no-progress", "--workers", "1"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1, done.stderr
    problems = [line for line in done.stderr.splitlines() if "loop.pdf" in line or "cut.tif" in line]
    assert len(problems) == 2 and all(line.startswith("ERROR") for line in problems), done.stderr
    assert any("cut.tif page 2" in line and "frame 2" in line for line in problems)
    records = {(Path(r["document"]).name, r["page"]): r for r in map(json.loads, (tmp_path / "out" / "results.jsonl")
                                                                     .read_text().splitlines())}
    assert records[("cut.tif", 1)]["status"] != "failed" and records[("cut.tif", 2)]["status"] == "failed"


# ------------------------------------------------------------- host logging
HOST = """
import logging, sys
from pathlib import Path
seen = []
class Host(logging.Handler):
    def emit(self, record):
        seen.append(record.name)
logging.getLogger().addHandler(Host())
import plugins.pdf_ingest, plugins.pdf_documents
pypdf_logger = logging.getLogger("pypdf")
print(pypdf_logger.propagate, pypdf_logger.handlers, pypdf_logger.level)
sys.path.insert(0, "tests")
from ingest_builders import ingest_and_load
ingest_and_load(Path(sys.argv[1]))  # pagemill's own pypdf calls
print(pypdf_logger.handlers)
from pypdf import PdfReader
PdfReader(sys.argv[1]).pages[0].extract_text()  # the host's
print(any(name.startswith("pypdf") for name in seen))
"""


def test_importing_and_ingesting_leave_the_hosts_pypdf_logging_alone(tmp_path) -> None:
    good = text_pdf(tmp_path / "t.pdf", ["Ticket No.: 554433 Gross: 60,000 lb"]).read_bytes()
    start = good.rindex(b"startxref") + len(b"startxref\n")
    damaged = good[:start] + b"%d" % (int(good[start:].split()[0]) + 7) + b"\n%%EOF\n"  # pypdf warns
    path = write(tmp_path / "damaged.pdf", damaged)
    out = subprocess.run([sys.executable, "-c", HOST, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["True [] 0", "[]", "True"]
