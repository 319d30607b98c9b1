"""Bad input, file by file, in one archive with good files; critical conditions found early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pdf_fixtures import (
    bomb_png,
    encrypted_pdf,
    page_tree_loop_pdf,
    scanned_pdf,
    text_pdf,
    ticket_image,
    zero_page_pdf,
)

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
    assert not (tmp_path / "out" / "results.jsonl").exists()


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
