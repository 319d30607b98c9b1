"""The built-in ingest plugin on good input: text layers, scans taken as stored, upright turns,
renders at the asked DPI, image files a frame a page, image modes, the worker's document cache."""

from __future__ import annotations

import io
import multiprocessing
import threading
from pathlib import Path

import pytest
from ingest_builders import (
    document,
    ingest_and_load,
    marked_image,
    placed_image_pdf,
    scan_pdf,
    write,
)
from pdf_fixtures import scanned_pdf, text_pdf, ticket_image, vector_pdf
from PIL import Image, ImageChops, ImageStat

import plugins.pdf_ingest as ingest
from engine.config import EngineConfig
from engine.records import EncodedImage
from plugins import pdf_documents

TEXT = "Ticket No.: 554433\nDate: 2026-03-14\nGross: 60,000 lb\nTare: 20,000 lb\nNet: 40,000 lb"
INVISIBLE_TEXT = b"BT 3 Tr /F1 12 Tf 20 20 Td (Ticket No.: 554433 Gross: 60,000 lb Net: 40,000 lb) Tj ET\n"


@pytest.fixture
def pdfium_opened(monkeypatch) -> list[str]:
    """The documents pdfium opens from now on (every render goes through one)."""
    opened: list[str] = []
    real = pdf_documents._open_pdfium

    def spy(data: bytes, password: str | None):
        opened.append(data[:8].decode("latin-1"))
        return real(data, password)

    monkeypatch.setattr(pdf_documents, "_open_pdfium", spy)
    return opened


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    assert first.size == second.size
    return ImageStat.Stat(ImageChops.difference(first.convert("L"), second.convert("L"))).mean[0]


# ------------------------------------------------------------------ text layer
def test_a_text_layer_page_gives_its_text_and_no_image(tmp_path, pdfium_opened) -> None:
    tasks, contents = ingest_and_load(text_pdf(tmp_path / "t.pdf", [TEXT, TEXT.replace("554433", "554434")]))
    assert [(t.index, t.page_count, t.kind, t.has_text_layer) for t in tasks] == [(0, 2, "pdf", True), (1, 2, "pdf", True)]
    assert [c.source for c in contents] == ["text-layer", "text-layer"]
    assert "554433" in contents[0].text and "554434" in contents[1].text and contents[0].image is None
    assert pdfium_opened == []


def test_a_few_characters_are_no_text_layer(tmp_path) -> None:
    tasks, contents = ingest_and_load(text_pdf(tmp_path / "short.pdf", ["Page 7 of 9"]), dpi=50)
    assert not tasks[0].has_text_layer
    assert contents[0].source == "rendered" and contents[0].text is None


def test_force_ocr_gives_an_image_for_a_text_page(tmp_path) -> None:
    _, contents = ingest_and_load(text_pdf(tmp_path / "t.pdf", [TEXT]), force_ocr=True, dpi=100)
    assert contents[0].text is None and contents[0].source == "rendered"
    assert contents[0].image.size == (850, 1100)


def test_an_ocr_layer_over_a_scan_is_text_and_force_ocr_takes_the_scan_as_stored(tmp_path, pdfium_opened) -> None:
    image = marked_image()
    path = write(tmp_path / "ocred.pdf", scan_pdf(image, extra=INVISIBLE_TEXT, font=True))
    tasks, contents = ingest_and_load(path)
    assert tasks[0].has_text_layer and contents[0].source == "text-layer" and "554433" in contents[0].text
    _, forced = ingest_and_load(path, force_ocr=True)
    assert forced[0].source == "embedded-image" and forced[0].text is None
    assert mean_difference(forced[0].image, image) == 0
    assert pdfium_opened == []


# ------------------------------------------------------------------------ scans
def test_a_scanned_page_gives_its_stored_image_without_rendering(tmp_path, pdfium_opened) -> None:
    image = marked_image((600, 800))
    tasks, contents = ingest_and_load(write(tmp_path / "scan.pdf", scan_pdf(image)))
    assert not tasks[0].has_text_layer
    assert contents[0].source == "embedded-image" and contents[0].image.mode == "L"
    assert mean_difference(contents[0].image, image) == 0  # the very pixels, no resampling
    assert contents[0].dpi == 72.0
    assert pdfium_opened == []


def test_a_plain_jpeg_scan_comes_as_its_stored_bytes(tmp_path, pdfium_opened) -> None:
    image = ticket_image("Ticket No.: 424242\nGross: 61,000 lb")
    path = scanned_pdf(tmp_path / "scan.pdf", [image, image], dpi=150)
    tasks, contents = ingest_and_load(path)
    encoded = contents[1].image
    assert isinstance(encoded, EncodedImage) and encoded.format == "JPEG" and encoded.size == image.size
    assert encoded.data in path.read_bytes()  # the stream as stored
    assert contents[1].dpi == 150.0 and pdfium_opened == []


def test_a_scan_stored_sideways_with_rotate_comes_out_upright(tmp_path, pdfium_opened) -> None:
    upright = marked_image((500, 300))
    for rotate in (90, 180, 270):
        # a scanner that stores the page as it went through and says how to show it
        stored = upright.rotate(rotate, expand=True)  # turned counterclockwise; /Rotate turns it back
        _, contents = ingest_and_load(write(tmp_path / f"r{rotate}.pdf", scan_pdf(stored, rotate=rotate)))
        assert contents[0].source == "embedded-image"
        assert contents[0].image.size == upright.size
        assert mean_difference(contents[0].image, upright) == 0, rotate
    assert pdfium_opened == []


PLACEMENTS = {  # an image of W×H placed by these matrices (turns and mirrors) on a page that fits it
    "upright": lambda w, h: (w, 0, 0, h, 0, 0),
    "mirrored": lambda w, h: (-w, 0, 0, h, w, 0),
    "upside-down": lambda w, h: (w, 0, 0, -h, 0, h),
    "half-turn": lambda w, h: (-w, 0, 0, -h, w, h),
    "quarter-left": lambda w, h: (0, w, -h, 0, h, 0),
    "quarter-right": lambda w, h: (0, -w, h, 0, 0, w),
    "transposed": lambda w, h: (0, w, h, 0, 0, 0),
    "transversed": lambda w, h: (0, -w, -h, 0, h, w),
}


@pytest.mark.parametrize("placement", list(PLACEMENTS))
def test_the_stored_image_is_what_a_viewer_shows_for_any_placement_and_rotation(tmp_path, placement) -> None:
    image = marked_image((240, 160))
    width, height = image.size
    matrix = PLACEMENTS[placement](width, height)
    page_size = (width, height) if matrix[1] == 0 else (height, width)
    for rotate in (0, 90, 180, 270):
        path = write(tmp_path / f"{rotate}.pdf", placed_image_pdf(image, matrix, page_size, rotate))
        tasks, contents = ingest_and_load(path, dpi=72)
        assert contents[0].source == "embedded-image"
        shown = ingest.render_page(pdf_documents.open_pdf(str(path), tasks[0].sha256, None), 0, EngineConfig(dpi=72))
        assert mean_difference(contents[0].image, shown) < 2, (placement, rotate)


def test_a_page_with_more_than_its_scan_is_rendered(tmp_path) -> None:
    image = marked_image((300, 400))
    stamp = b"0 0 1 rg 20 20 100 40 re f\n"  # a visible filled rectangle over the scan
    small = (150, 0, 0, 200, 0, 0)  # the image on a quarter of the page
    for name, data in {
        "drawing": scan_pdf(image, extra=stamp),
        "small": placed_image_pdf(image, small, (300, 400)),
        "visible-text": scan_pdf(image, extra=INVISIBLE_TEXT.replace(b"3 Tr", b"0 Tr"), font=True),
    }.items():
        _, contents = ingest_and_load(write(tmp_path / f"{name}.pdf", data), dpi=72, force_ocr=True)
        assert contents[0].source == "rendered", name


@pytest.mark.parametrize("mode, expected_mode", [("1", "L"), ("CMYK", "RGB"), ("P", "RGB"), ("RGB", "RGB")])
def test_stored_images_come_out_gray_or_rgb(tmp_path, mode, expected_mode, pdfium_opened) -> None:
    source = Image.new("RGB", (200, 120), (255, 255, 255))
    source.paste(marked_image((120, 80), "RGB"), (10, 10))
    source.paste((200, 30, 30), (150, 20, 190, 110))
    stored = source.convert("1") if mode == "1" else source.quantize(16) if mode == "P" else source.convert(mode)
    _, contents = ingest_and_load(write(tmp_path / "m.pdf", scan_pdf(stored)))
    assert contents[0].source == "embedded-image" and contents[0].image.mode == expected_mode
    assert mean_difference(contents[0].image, stored.convert(expected_mode)) < 1
    assert pdfium_opened == []


# ------------------------------------------------------------------------ renders
@pytest.mark.parametrize("dpi, rotate, size", [(100, 0, (850, 1100)), (150, 0, (1275, 1650)), (100, 90, (1100, 850))])
def test_a_vector_page_is_rendered_at_the_dpi(tmp_path, dpi, rotate, size) -> None:
    source = vector_pdf(tmp_path / "v.pdf")
    if rotate:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(source))
        writer.pages[0].rotate(rotate)
        writer.write(tmp_path / "v.pdf")
    tasks, contents = ingest_and_load(tmp_path / "v.pdf", dpi=dpi)
    assert not tasks[0].has_text_layer
    assert contents[0].source == "rendered" and contents[0].dpi == dpi
    assert contents[0].image.size == size and contents[0].image.mode == "L"
    assert contents[0].image.getextrema() == (0, 255)  # the black rectangle on white


# -------------------------------------------------------------------- image files
def test_a_multi_frame_tiff_is_a_document_a_frame_a_page(tmp_path) -> None:
    frames = [ticket_image(f"Ticket No.: {n}") for n in (1, 2, 3)]
    frames[0].save(tmp_path / "scan.tif", save_all=True, append_images=frames[1:], compression="tiff_lzw")
    tasks, contents = ingest_and_load(tmp_path / "scan.tif")
    assert [(t.index, t.page_count, t.kind) for t in tasks] == [(0, 3, "image"), (1, 3, "image"), (2, 3, "image")]
    assert all(c.source == "image-file" for c in contents)
    assert [mean_difference(c.image, f) for c, f in zip(contents, frames)] == [0, 0, 0]


@pytest.mark.parametrize("name, fmt", [("a.png", "PNG"), ("b.jpg", "JPEG"), ("misnamed.pdf", "PNG"), ("noext", "JPEG")])
def test_png_and_jpeg_files_are_one_page_found_by_their_bytes(tmp_path, name, fmt) -> None:
    image = ticket_image()
    image.save(tmp_path / name, fmt)
    tasks, contents = ingest_and_load(tmp_path / name)
    assert len(tasks) == 1 and tasks[0].kind == "image" and contents[0].source == "image-file"
    assert contents[0].image.size == image.size
    assert mean_difference(contents[0].image, image) < (0.01 if fmt == "PNG" else 3)


def test_a_photo_is_turned_by_its_exif_orientation(tmp_path) -> None:
    upright = marked_image((300, 200), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned; show it turned 90° clockwise
    upright.rotate(90, expand=True).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    _, contents = ingest_and_load(tmp_path / "photo.jpg")
    assert contents[0].image.size == (300, 200)
    assert mean_difference(contents[0].image, upright) < 4


@pytest.mark.parametrize("mode, fmt, expected_mode", [
    ("1", "TIFF", "L"), ("I;16", "PNG", "L"), ("RGBA", "PNG", "RGB"), ("P", "PNG", "RGB"), ("CMYK", "JPEG", "RGB"),
    ("LA", "PNG", "L"),
])
def test_image_file_modes_become_gray_or_rgb(tmp_path, mode, fmt, expected_mode) -> None:
    base = marked_image((120, 90), "RGB")
    base.paste((200, 30, 30), (80, 10, 110, 40))  # some colour
    if mode == "I;16":
        stored = base.convert("L").convert("I").point(lambda v: v * 256).convert("I;16")  # 8 bits scaled up
        reference = base.convert("L")
    elif mode == "P":
        stored = reference = base.quantize(8)
    else:
        stored = reference = base.convert(mode)
    stored.save(tmp_path / "f", fmt)
    _, contents = ingest_and_load(tmp_path / "f")
    assert contents[0].image.mode == expected_mode
    assert mean_difference(contents[0].image, reference.convert(expected_mode) if mode != "CMYK" else base) < \
        (6 if fmt == "JPEG" else 0.5)


# ----------------------------------------------------------- the document cache
def test_the_pages_of_a_document_read_it_once(tmp_path, monkeypatch) -> None:
    reads: list[str] = []
    real = pdf_documents.read_document_bytes
    monkeypatch.setattr(pdf_documents, "read_document_bytes", lambda p, s: reads.append(p) or real(p, s))
    tasks, contents = ingest_and_load(text_pdf(tmp_path / "t.pdf", [TEXT] * 4))
    assert len(contents) == 4 and reads == [str(tmp_path / "t.pdf")]


def test_the_cache_keeps_the_last_documents_only(tmp_path) -> None:
    pdf_documents.clear_cache()
    paths = [text_pdf(tmp_path / f"{n}.pdf", [TEXT + f"\n{n}"]) for n in range(pdf_documents.CACHE_SIZE + 2)]
    for path in paths:
        ingest_and_load(path)
    cached = [Path(path).name for _, path, _ in pdf_documents.cached_documents()]
    assert cached == [p.name for p in paths[-pdf_documents.CACHE_SIZE:]]


def test_a_file_changed_after_ingest_is_not_read_as_the_old_one(tmp_path) -> None:
    from engine.errors import PermanentError

    path = text_pdf(tmp_path / "t.pdf", [TEXT])
    config = EngineConfig()
    tasks = ingest.pagemill_ingest(document(path), config)
    pdf_documents.clear_cache()
    text_pdf(path, [TEXT.replace("554433", "999999")])
    with pytest.raises(PermanentError, match="changed since it was listed"):
        ingest.pagemill_load_page(tasks[0], config)


def _child_loads(path: str, sha256: str, connection) -> None:
    import os

    from engine.records import PageTask

    content = ingest.pagemill_load_page(PageTask(path, sha256, 0, 1), EngineConfig(dpi=50, force_ocr=True))
    connection.send((os.getpid(), content.source, [pid for pid, _, _ in pdf_documents.cached_documents()]))


def test_a_forked_worker_opens_its_own_documents_even_while_a_lock_is_held(tmp_path) -> None:
    import os

    path = vector_pdf(tmp_path / "v.pdf")
    tasks, _ = ingest_and_load(path, dpi=50)  # the parent has the document (pypdf and pdfium) open
    assert (os.getpid(), str(path), tasks[0].sha256) in pdf_documents.cached_documents()
    held, release = threading.Event(), threading.Event()

    def hold_pdfium() -> None:
        with pdf_documents.pdfium_lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold_pdfium)
    holder.start()
    held.wait(5)
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=_child_loads, args=(str(path), tasks[0].sha256, child_end))
    try:
        child.start()
        assert parent_end.poll(30), "the child hung on a lock or a document of its parent"
        pid, source, cached_pids = parent_end.recv()
    finally:
        release.set()
        holder.join()
        child.join(10)
    assert source == "rendered" and pid == child.pid and cached_pids == [child.pid]
    assert all(p == os.getpid() for p, _, _ in pdf_documents.cached_documents())


# ------------------------------------------------------------ logs, limits, errors
def test_pypdf_warnings_go_to_the_debug_log_not_stderr(tmp_path, capfd) -> None:
    from loguru import logger

    good = text_pdf(tmp_path / "t.pdf", [TEXT]).read_bytes()
    start = good.rindex(b"startxref") + len(b"startxref\n")
    damaged = good[:start] + b"%d" % (int(good[start:].split()[0]) + 7) + b"\n%%EOF\n"  # a wrong xref offset
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="DEBUG")
    try:
        _, contents = ingest_and_load(write(tmp_path / "damaged.pdf", damaged))
    finally:
        logger.remove(sink)
    assert contents[0].source == "text-layer"
    assert any(m.startswith("pypdf: ") for m in messages)
    assert "pypdf" not in capfd.readouterr().err.lower()


def test_pillow_follows_the_pixel_limit(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    ticket_image().save(tmp_path / "a.png")
    ingest_and_load(tmp_path / "a.png", max_image_pixels=2_000_000)
    assert Image.MAX_IMAGE_PIXELS == 1_000_000  # Pillow refuses above twice its value: the same 2,000,000


def test_parser_errors_are_permanent_and_memory_errors_transient() -> None:
    import pypdfium2
    from pypdf.errors import LimitReachedError, PdfReadError, PdfStreamError

    classify = ingest.pagemill_classify_error
    for error in (PdfReadError("x"), PdfStreamError("x"), LimitReachedError("x"), pypdfium2.PdfiumError("x"),
                  Image.DecompressionBombError("x")):
        assert classify(error, "load", None) == "permanent", error
    assert classify(MemoryError(), "load", None) == "transient"
    assert classify(ValueError("not ours"), "ocr", None) is None


def test_encoded_image_reads_back_as_the_same_picture(tmp_path) -> None:
    image = ticket_image().convert("RGB")
    _, contents = ingest_and_load(scanned_pdf(tmp_path / "s.pdf", [image]))
    encoded = contents[0].image
    assert isinstance(encoded, EncodedImage)
    decoded = Image.open(io.BytesIO(encoded.data))
    assert decoded.size == image.size and mean_difference(decoded, image) < 3
