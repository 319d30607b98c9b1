"""Bad input: each bad kind of file is one clear pagemill error (the plugin alone, then a whole archive
through the CLI), decompression bombs are refused before decoding, nothing hangs; and the public
corpora of damaged, encrypted and odd PDFs, when present, all end in pages or a pagemill error."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from ingest_builders import document, image_stream, ingest_and_load, page_pdf, raw_pdf, stream, write
from pdf_fixtures import (
    bomb_png,
    encrypted_pdf,
    page_tree_loop_pdf,
    scanned_pdf,
    text_pdf,
    ticket_image,
    vector_pdf,
    zero_page_pdf,
)
from PIL import Image

import plugins.pdf_ingest as ingest
from engine.config import EngineConfig
from engine.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    PagemillError,
    PageTooLargeError,
    UnsupportedDocumentError,
)
from plugins import pdf_documents

TEXT = "Ticket No.: 554433\nDate: 2026-03-14\nGross: 60,000 lb\nTare: 20,000 lb\nNet: 40,000 lb"
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
CORPUS_PASSWORDS = {"encrypted-pypdf": "asdfzxcv"}
FILE_PASSWORDS = {"r6-both-passwords.pdf": "foo"}
SECONDS_PER_FILE = 20.0


def one_clear_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


# ----------------------------------------------------------------- bad files
@pytest.mark.parametrize("name, data, error, words", [
    ("empty.pdf", b"", EmptyDocumentError, "0 bytes"),
    ("notes.pdf", b"just some text, not a pdf", UnsupportedDocumentError, "starts with b'just som'"),
    ("notes.docx", b"PK\x03\x04 a zip", UnsupportedDocumentError, "not a PDF or image"),
    ("corrupt.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 12, CorruptDocumentError, "cannot read it"),
    ("gif.gif", b"GIF89a" + bytes(40), UnsupportedDocumentError, "not a PDF or image"),
])
def test_bad_files_are_one_clear_error(tmp_path, name, data, error, words) -> None:
    with pytest.raises(error) as info:
        ingest_and_load(write(tmp_path / name, data))
    assert words in one_clear_line(info)


def test_a_pdf_without_pages_is_empty(tmp_path) -> None:
    with pytest.raises(EmptyDocumentError) as info:
        ingest_and_load(zero_page_pdf(tmp_path / "zero.pdf"))
    assert "no pages" in one_clear_line(info)


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8, 0.98])
def test_a_truncated_pdf_says_so(tmp_path, fraction) -> None:
    whole = scanned_pdf(tmp_path / "whole.pdf", [ticket_image(), ticket_image()]).read_bytes()
    cut = write(tmp_path / "cut.pdf", whole[: int(len(whole) * fraction)])
    with pytest.raises(CorruptDocumentError) as info:
        ingest_and_load(cut)
    assert one_clear_line(info).startswith("truncated")


def test_a_truncated_image_file_is_corrupt(tmp_path) -> None:
    ticket_image().save(tmp_path / "whole.png")
    whole = (tmp_path / "whole.png").read_bytes()
    with pytest.raises(CorruptDocumentError) as info:
        ingest_and_load(write(tmp_path / "cut.png", whole[: len(whole) // 2]))
    one_clear_line(info)


LOOP_PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>"
LOOP_CONTENT = stream(b"", b"0 0 m 100 100 l S")
PAGE_TREES = {
    "kid-is-itself": [b"<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 >>", LOOP_PAGE, LOOP_CONTENT],
    "two-node-cycle": [b"<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 3 >>", LOOP_PAGE, LOOP_CONTENT,
                       b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>"],
    "cycle-claiming-a-billion-pages": [b"<< /Type /Pages /Kids [2 0 R] /Count 1000000000 >>", LOOP_PAGE, LOOP_CONTENT],
    "a-billion-pages-claimed": [b"<< /Type /Pages /Kids [3 0 R] /Count 1000000000 >>", LOOP_PAGE, LOOP_CONTENT],
}


@pytest.mark.parametrize("tree", list(PAGE_TREES))
def test_a_looping_or_lying_page_tree_ends_quickly(tmp_path, tree) -> None:
    path = write(tmp_path / f"{tree}.pdf", raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", *PAGE_TREES[tree]]))
    started = time.monotonic()
    try:
        tasks, contents = ingest_and_load(path, dpi=50)
    except PagemillError as exc:
        assert "\n" not in str(exc)
    else:
        assert 1 <= len(tasks) <= 3 and all(c.image is not None for c in contents)
    assert time.monotonic() - started < 5


def test_the_page_tree_loop_fixture_is_one_pagemill_error(tmp_path) -> None:
    with pytest.raises((CorruptDocumentError, EmptyDocumentError)) as info:
        ingest_and_load(page_tree_loop_pdf(tmp_path / "loop.pdf"))
    one_clear_line(info)


def test_ingest_stops_reading_text_layers_past_its_time_cap(tmp_path, monkeypatch) -> None:
    calls: list[int] = []
    real = ingest._pypdf_text
    monkeypatch.setattr(ingest, "_pypdf_text", lambda page: calls.append(1) or real(page))
    monkeypatch.setattr(ingest, "TEXT_PROBE_SECONDS", 0.0)
    path = text_pdf(tmp_path / "t.pdf", [TEXT, "Hi"])
    tasks = ingest.pagemill_ingest(document(path), EngineConfig(dpi=50))
    assert calls == [] and [t.has_text_layer for t in tasks] == [True, True]  # "has fonts": decided at load
    contents = [ingest.pagemill_load_page(t, EngineConfig(dpi=50)) for t in tasks]
    assert [c.source for c in contents] == ["text-layer", "rendered"]


# ------------------------------------------------------------------ encrypted
@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128", "RC4-128"])
def test_an_encrypted_pdf_opens_with_its_password_only(tmp_path, algorithm) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(text_pdf(tmp_path / "plain.pdf", [TEXT])))
    writer.encrypt("s3cret", "owner", algorithm=algorithm)
    writer.write(tmp_path / "locked.pdf")
    with pytest.raises(EncryptedDocumentError) as info:
        ingest_and_load(tmp_path / "locked.pdf")
    assert one_clear_line(info) == "encrypted; pass --password"
    with pytest.raises(EncryptedDocumentError, match="does not open it"):
        ingest_and_load(tmp_path / "locked.pdf", password="wrong")
    for password in ("s3cret", "owner"):
        _, contents = ingest_and_load(tmp_path / "locked.pdf", password=password, force_ocr=True, dpi=50)
        assert contents[0].source == "rendered"  # pdfium opened it with the same password
    _, contents = ingest_and_load(tmp_path / "locked.pdf", password="s3cret")
    assert "554433" in contents[0].text


def test_an_owner_password_alone_does_not_stop_reading(tmp_path) -> None:
    locked = encrypted_pdf(text_pdf(tmp_path / "plain.pdf", [TEXT]), tmp_path / "owner.pdf", "")
    _, contents = ingest_and_load(locked, password="some other file's password")
    assert "554433" in contents[0].text


# -------------------------------------------------------------------- bombs
@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """What gets decoded from now on: Pillow image data, pypdf images, pdfium renders."""
    import pypdfium2
    from PIL import ImageFile
    from pypdf.generic import StreamObject

    seen: list[str] = []
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    for owner, name in ((ImageFile.ImageFile, "load"), (StreamObject, "decode_as_image"),
                        (pypdfium2.PdfPage, "render")):
        real = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda self, *a, _real=real, _name=name, **k: seen.append(_name) or _real(self, *a, **k))
    return seen


def test_an_image_bomb_is_refused_before_decoding(tmp_path, decoded) -> None:
    bomb = bomb_png(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(PageTooLargeError) as info:
        ingest_and_load(bomb, max_image_pixels=50_000_000)
    assert "400,000,000 pixels" in one_clear_line(info) and "--max-image-pixels" in str(info.value)
    assert decoded == []


def test_a_tiff_with_one_bomb_frame_is_refused_at_ingest(tmp_path, decoded) -> None:
    frames = [Image.new("1", (100, 100), 1), Image.new("1", (12000, 12000), 1)]
    frames[0].save(tmp_path / "t.tif", save_all=True, append_images=frames[1:], compression="group4")
    decoded.clear()
    with pytest.raises(PageTooLargeError, match="frame 2"):
        ingest_and_load(tmp_path / "t.tif", max_image_pixels=100_000_000)
    assert decoded == []


def test_an_embedded_image_bomb_is_refused_from_its_declared_size(tmp_path, decoded) -> None:
    huge = stream(b"/Type /XObject /Subtype /Image /Width 40000 /Height 40000 /ColorSpace /DeviceGray "
                  b"/BitsPerComponent 8 /Filter /FlateDecode", __import__("zlib").compress(bytes(4000)))
    for name, content in {"scan": b"q 612 0 0 792 0 0 cm /Im0 Do Q", "stamp": b"q 50 0 0 50 0 0 cm /Im0 Do Q 0 0 m 9 9 l S"}.items():
        path = write(tmp_path / f"{name}.pdf", page_pdf(content, xobject=huge))
        with pytest.raises(PageTooLargeError) as info:
            ingest_and_load(path)
        assert "40000×40000" in one_clear_line(info)
        with pytest.raises(PageTooLargeError):  # pdfium's own check, for files pypdf cannot read
            ingest.render_page(pdf_documents.open_pdf(str(path), document(path).sha256, None), 0, EngineConfig())
    assert decoded == []


def test_a_page_too_large_to_render_is_refused_before_rendering(tmp_path, decoded) -> None:
    with pytest.raises(PageTooLargeError) as info:
        ingest_and_load(vector_pdf(tmp_path / "v.pdf"), dpi=1200, max_image_pixels=10_000_000)
    assert "10200×13200" in one_clear_line(info)
    poster = write(tmp_path / "poster.pdf", page_pdf(b"0 0 m 100 100 l S", page_size=(14400, 14400)))
    with pytest.raises(PageTooLargeError, match="60000×60000"):
        ingest_and_load(poster)  # 200 inches square at 300 dpi, with the default limit
    assert decoded == []
    _, contents = ingest_and_load(poster, dpi=30)  # the same page at 30 dpi is fine
    assert contents[0].image.size == (6000, 6000) and decoded == ["render"]


def test_an_image_stream_placed_as_a_scan_still_goes_through_the_size_check(tmp_path) -> None:
    image = Image.new("L", (3000, 2000), 255)
    path = write(tmp_path / "scan.pdf", page_pdf(b"q 3000 0 0 2000 0 0 cm /Im0 Do Q", (3000, 2000), 0, image_stream(image)))
    with pytest.raises(PageTooLargeError):
        ingest_and_load(path, max_image_pixels=5_000_000)
    _, contents = ingest_and_load(path, max_image_pixels=6_000_000)
    assert contents[0].source == "embedded-image"


ROOT = Path(__file__).resolve().parents[1]
GOOD_TEXT = "Ticket No.: {n}\nDate: 2026-03-14\nGross: 60,000 lb\nTare: 20,000 lb\nNet: 40,000 lb\nNet Tons: 20.00"


def pagemill(*args: str, env_extra: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd)


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture
def bad_archive(tmp_path) -> tuple[Path, dict[str, str]]:
    archive = tmp_path / "archive"
    archive.mkdir()
    for n in range(3):
        text_pdf(archive / f"good-{n}.pdf", [GOOD_TEXT.format(n=100 + n)])
    scanned_pdf(archive / "good-scan.pdf", [ticket_image("Ticket No.: 777001\nGross: 50,000 lb")])
    whole = scanned_pdf(tmp_path / "whole.pdf", [ticket_image()])
    (archive / "truncated.pdf").write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    (archive / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(3000))
    encrypted_pdf(archive / "good-0.pdf", archive / "encrypted.pdf", "s3cret")
    (archive / "empty.pdf").write_bytes(b"")
    zero_page_pdf(archive / "zero-pages.pdf")
    (archive / "notes.docx").write_bytes(b"PK\x03\x04 this is a zip, not a pdf")
    bomb_png(archive / "bomb.png", 15000, 15000)
    page_tree_loop_pdf(archive / "loop.pdf")
    expected = {
        "truncated.pdf": "CorruptDocumentError", "corrupt.pdf": "CorruptDocumentError",
        "encrypted.pdf": "EncryptedDocumentError", "empty.pdf": "EmptyDocumentError",
        "zero-pages.pdf": "EmptyDocumentError", "notes.docx": "UnsupportedDocumentError",
        "bomb.png": "PageTooLargeError", "loop.pdf": "",
    }
    return archive, expected


@pytest.mark.slow
def test_each_bad_file_fails_alone_with_one_clear_line(bad_archive, tmp_path, tesseract_available) -> None:
    archive, expected = bad_archive
    out = tmp_path / "out"
    before = snapshot(archive)
    done = pagemill("run", str(archive), "--out", str(out), "--no-progress", "--max-image-pixels", "100000000",
                    "--workers", "2", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by_name = {}
    for record in records:
        by_name.setdefault(Path(record["document"]).name, []).append(record)
    for name in ("good-0.pdf", "good-1.pdf", "good-2.pdf", "good-scan.pdf"):
        assert [r["status"] for r in by_name[name]] != ["failed"], name
    assert by_name["good-scan.pdf"][0]["fields"]["ticket_number"]["value"] == "777001"
    for name, error_type in expected.items():
        failed = [r for r in by_name[name] if r["status"] == "failed"]
        assert len(failed) == 1, (name, by_name[name])
        assert failed[0]["error"]["class"] == "permanent"
        if error_type:
            assert failed[0]["error"]["type"] == error_type, (name, failed[0]["error"])
        lines = [line for line in done.stderr.splitlines() if name in line and line.startswith("ERROR")]
        assert len(lines) == 1, (name, done.stderr)
    assert snapshot(archive) == before, "something was written into the archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive", "out", "whole.pdf"]


def test_encrypted_pdf_opens_with_password(tmp_path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    plain = text_pdf(tmp_path / "plain.pdf", [GOOD_TEXT.format(n=555)])
    encrypted_pdf(plain, archive / "locked.pdf", "s3cret")
    done = pagemill("run", str(archive), "--out", str(tmp_path / "out"), "--no-progress", "--password", "s3cret")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[0])
    assert record["fields"]["ticket_number"]["value"] == "555"


def test_missing_tesseract_language_is_critical_with_the_install_command(tmp_path, tesseract_available) -> None:
    archive = tmp_path / "a"
    archive.mkdir()
    text_pdf(archive / "t.pdf", [GOOD_TEXT.format(n=1)])
    done = pagemill("run", str(archive), "--out", str(tmp_path / "out"), "--lang", "xyz", "--no-progress")
    assert done.returncode == 3
    assert "apt-get install -y tesseract-ocr-xyz" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()  # the plugins' checks come before the folder is made


def test_missing_tesseract_binary_is_critical(tmp_path) -> None:
    archive = tmp_path / "a"
    archive.mkdir()
    text_pdf(archive / "t.pdf", [GOOD_TEXT.format(n=1)])
    done = pagemill("run", str(archive), "--out", str(tmp_path / "out"), "--no-progress",
                    env_extra={"PATH": str(tmp_path / "empty-bin")})
    assert done.returncode == 3
    assert "apt-get install -y tesseract-ocr" in done.stderr and "Traceback" not in done.stderr


def test_too_little_free_disk_is_critical(tmp_path) -> None:
    archive = tmp_path / "a"
    archive.mkdir()
    text_pdf(archive / "t.pdf", [GOOD_TEXT.format(n=1)])
    done = pagemill("run", str(archive), "--out", str(tmp_path / "out"), "--no-progress",
                    "--min-free-disk", str(10**12))
    assert done.returncode == 3 and "min-free-disk" in done.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ public corpora
def _outcome(path: str, password: str | None) -> dict:
    """What ingest and load make of one file: pages by source, errors by class, anything else raw."""
    config = EngineConfig(dpi=150, password=password)
    outcome: dict = {"pages": Counter(), "errors": Counter(), "raw": [], "messages": []}
    try:
        tasks = ingest.pagemill_ingest(document(Path(path)), config)
    except PagemillError as exc:
        outcome.update(ingest=type(exc).__name__, messages=[str(exc)])
        return outcome
    except Exception as exc:  # noqa: BLE001 - what the test is looking for
        outcome.update(ingest="raw", raw=[f"ingest: {type(exc).__name__}: {exc}"])
        return outcome
    outcome["ingest"] = "ok"
    for task in tasks:
        try:
            outcome["pages"][ingest.pagemill_load_page(task, config).source] += 1
        except PagemillError as exc:
            outcome["errors"][type(exc).__name__] += 1
            outcome["messages"].append(str(exc))
        except Exception as exc:  # noqa: BLE001
            outcome["raw"].append(f"page {task.number}: {type(exc).__name__}: {exc}")
    return outcome


def _corpus_worker(connection) -> None:
    from loguru import logger

    logger.remove()
    while (item := connection.recv()) is not None:
        connection.send(_outcome(*item))


class CorpusRunner:
    """One child process that reads files one by one; killed and replaced when a file hangs."""

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("fork")
        self.process = None

    def run(self, path: str, password: str | None) -> dict | None:
        if self.process is None or not self.process.is_alive():
            self.connection, child_end = self.context.Pipe()
            self.process = self.context.Process(target=_corpus_worker, args=(child_end,), daemon=True)
            self.process.start()
        self.connection.send((path, password))
        if self.connection.poll(SECONDS_PER_FILE):
            try:
                return self.connection.recv()
            except EOFError:
                pass  # the child died: counted as a hang
        self.process.kill()
        self.process.join(5)
        self.process = None
        return None

    def close(self) -> None:
        if self.process is not None:
            self.connection.send(None)
            self.process.join(5)


@pytest.mark.slow
@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"{CORPORA} is not there")
@pytest.mark.parametrize("corpus", ["malformed-qpdf", "encrypted-pypdf", "scans-ocrmypdf"])
def test_every_file_of_the_public_corpora_gives_pages_or_a_pagemill_error(corpus) -> None:
    runner, summary = CorpusRunner(), Counter()
    hangs, raw, pages = [], [], Counter()
    try:
        for path in sorted(p for p in (CORPORA / corpus).iterdir() if p.is_file()):
            password = FILE_PASSWORDS.get(path.name, CORPUS_PASSWORDS.get(corpus))
            outcome = runner.run(str(path), password)
            if outcome is None:
                hangs.append(path.name)
                continue
            summary["opened" if outcome["ingest"] == "ok" else f"failed {outcome['ingest']}"] += 1
            pages.update(outcome["pages"])
            pages.update({f"failed {name}": n for name, n in outcome["errors"].items()})
            raw += [f"{path.name}: {line}" for line in outcome["raw"]]
            assert all(message and "\n" not in message for message in outcome["messages"]), path.name
    finally:
        runner.close()
    print(f"\n{corpus}: files {dict(summary)}; pages {dict(pages)}")
    assert hangs == [], f"ran past {SECONDS_PER_FILE:g} s or died: {hangs}"
    assert raw == [], raw
    assert summary["opened"] > 0
    if corpus == "encrypted-pypdf":
        assert summary == {"opened": len(list((CORPORA / corpus).iterdir()))}  # every one, with its password
