"""The built-in ingest plugin alone: text layers, scans, renders, image files, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from pdf_fixtures import (
    bomb_png,
    encrypted_pdf,
    page_tree_loop_pdf,
    rotated_scanned_pdf,
    scanned_pdf,
    text_pdf,
    ticket_image,
    vector_pdf,
    zero_page_pdf,
)
from PIL import Image

import plugins.pdf_ingest as ingest
from engine.config import EngineConfig
from engine.discovery import sha256_of
from engine.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    PageTooLargeError,
    UnsupportedDocumentError,
)
from engine.records import Document

TEXT = "Ticket No.: 554433\nDate: 2026-03-14\nGross: 60,000 lb\nTare: 20,000 lb\nNet: 40,000 lb"


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def doc(path: Path) -> Document:
    return Document(str(path), sha256_of(path), path.stat().st_size)


def pages_of(path: Path, **config):
    cfg = EngineConfig(**config)
    tasks = ingest.pagemill_ingest(doc(path), cfg)
    return tasks, [ingest.pagemill_load_page(task, cfg) for task in tasks]


def test_text_layer_page_gives_text_and_no_image(tmp_path) -> None:
    tasks, contents = pages_of(text_pdf(tmp_path / "t.pdf", [TEXT, TEXT]))
    assert [t.index for t in tasks] == [0, 1] and all(t.has_text_layer for t in tasks)
    assert contents[0].source == "text-layer" and "554433" in contents[0].text
    assert contents[0].image is None


def test_force_ocr_gives_an_image_for_a_text_page(tmp_path) -> None:
    _, contents = pages_of(text_pdf(tmp_path / "t.pdf", [TEXT]), force_ocr=True, dpi=100)
    assert contents[0].image is not None and contents[0].source == "rendered"


def test_scanned_page_gives_its_embedded_image_without_rendering(tmp_path, monkeypatch) -> None:
    image = ticket_image()
    path = scanned_pdf(tmp_path / "scan.pdf", [image, image])
    monkeypatch.setattr(ingest, "_render", lambda *a: pytest.fail("rendered a plain scan"))
    tasks, contents = pages_of(path)
    assert len(tasks) == 2 and not tasks[0].has_text_layer
    assert contents[0].source == "embedded-image"
    assert contents[0].image.size == image.size


def test_rotated_scan_is_upright(tmp_path) -> None:
    image = ticket_image(size=(1200, 600))
    _, contents = pages_of(rotated_scanned_pdf(tmp_path / "rot.pdf", image, 90))
    assert contents[0].source == "embedded-image"
    assert contents[0].image.size == (1200, 600)
    upright = Image.eval(contents[0].image.convert("L"), lambda v: 255 - v).getbbox()
    original = Image.eval(image, lambda v: 255 - v).getbbox()
    assert abs(upright[0] - original[0]) < 20 and abs(upright[1] - original[1]) < 20


def test_vector_page_is_rendered_at_dpi(tmp_path) -> None:
    _, contents = pages_of(vector_pdf(tmp_path / "v.pdf"), dpi=100)
    assert contents[0].source == "rendered"
    assert contents[0].image.size == (850, 1100)  # letter at 100 DPI


def test_image_files_are_documents_a_frame_a_page(tmp_path) -> None:
    frames = [ticket_image(), ticket_image("Ticket No.: 2"), ticket_image("Ticket No.: 3")]
    tiff = tmp_path / "scan.tif"
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    png, jpeg = tmp_path / "a.png", tmp_path / "b.jpg"
    frames[0].save(png)
    frames[0].save(jpeg)
    tasks, contents = pages_of(tiff)
    assert len(tasks) == 3 and all(c.source == "image-file" for c in contents)
    for single in (png, jpeg):
        tasks, contents = pages_of(single)
        assert len(tasks) == 1 and contents[0].image.size == frames[0].size


def test_encrypted_pdf_opens_with_the_password_only(tmp_path) -> None:
    plain = text_pdf(tmp_path / "plain.pdf", [TEXT])
    locked = encrypted_pdf(plain, tmp_path / "locked.pdf", "s3cret")
    with pytest.raises(EncryptedDocumentError, match="--password"):
        pages_of(locked)
    with pytest.raises(EncryptedDocumentError, match="wrong"):
        pages_of(locked, password="nope")
    _, contents = pages_of(locked, password="s3cret")
    assert "554433" in contents[0].text


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda p: written(p, b""), EmptyDocumentError),
        (lambda p: written(p, b"just some text, not a pdf"), UnsupportedDocumentError),
        (lambda p: zero_page_pdf(p), EmptyDocumentError),
        (lambda p: page_tree_loop_pdf(p), (CorruptDocumentError, EmptyDocumentError)),
    ],
    ids=["empty", "non-pdf", "zero-pages", "page-tree-loop"],
)
def test_bad_files_raise_one_clear_error(tmp_path, make, error) -> None:
    path = make(tmp_path / "bad.pdf")
    with pytest.raises(error) as info:
        pages_of(path)
    assert "\n" not in str(info.value) and str(info.value)


def test_truncated_pdf_is_corrupt(tmp_path) -> None:
    whole = scanned_pdf(tmp_path / "whole.pdf", [ticket_image()])
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with pytest.raises(CorruptDocumentError):
        pages_of(cut)


def test_image_bomb_is_refused_before_decoding(tmp_path, monkeypatch) -> None:
    bomb = bomb_png(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(PageTooLargeError, match="max-image-pixels"):
        pages_of(bomb, max_image_pixels=50_000_000)


def test_page_too_large_to_render_is_refused(tmp_path) -> None:
    with pytest.raises(PageTooLargeError):
        pages_of(vector_pdf(tmp_path / "v.pdf"), dpi=1200, max_image_pixels=10_000_000)


def test_a_plain_jpeg_scan_comes_as_its_bytes_and_ocr_reads_it(tmp_path, tesseract_available) -> None:
    from engine.records import EncodedImage
    from plugins.tesseract_ocr import ocr_image

    image = ticket_image("Ticket No.: 424242\nGross: 61,000 lb")
    _, contents = pages_of(scanned_pdf(tmp_path / "scan.pdf", [image]))
    encoded = contents[0].image
    assert isinstance(encoded, EncodedImage) and encoded.data[:3] == b"\xff\xd8\xff"
    assert encoded.size == image.size and encoded.to_pil().size == image.size
    from_bytes = ocr_image(encoded)
    from_pil = ocr_image(encoded.to_pil())
    assert "424242" in from_bytes.text and from_bytes.text == from_pil.text
