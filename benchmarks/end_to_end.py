"""End to end on scanned tickets: the engine against tesseract alone and against OCRmyPDF.

A generated ticket archive at 300 DPI. The *ideal* is the sum of each page's tesseract CPU
seconds, measured one page at a time, divided by the worker count: what a perfect scheduler with
no overhead would take. OCRmyPDF (``ocrmypdf --jobs N --output-type none --sidecar``) runs over
the same pages merged into one PDF, from its own virtual environment (created on first use when
the package registry is reachable; left out otherwise). Targets: engine ≤ 1.10 × ideal, engine ≤
0.8 × OCRmyPDF, speed-up from 1 to 2 workers ≥ 1.85.

    python -m benchmarks.end_to_end [--pages 200] [--workers 2] [--no-ocrmypdf]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Stopwatch, header, quiet_logs, table, verdict
from engine.api import Engine
from engine.config import EngineConfig
from engine.sample import generate_sample

OCRMYPDF_VENV = Path(__file__).resolve().parent / ".venv-ocrmypdf"


def tesseract_cpu_seconds(documents: list[Path], config: EngineConfig) -> tuple[float, int]:
    """Each page's image through tesseract alone, one at a time: CPU seconds of the tesseracts.

    The image is the one the engine's ingest hands to OCR (a plain scan's JPEG as stored), so
    both sides give tesseract the same input."""
    from pypdf import PdfReader

    from plugins.pdf_scan import find_scan, scan_image
    from plugins.tesseract_ocr import ocr_image

    pages = 0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for path in documents:
        reader = PdfReader(path)
        for page in reader.pages:
            scan = find_scan(page, reader)
            image = scan_image(scan, config.max_image_pixels) if scan is not None else None
            ocr_image(image if image is not None else page.images[0].image, config.lang, config.psm)
            pages += 1
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), pages


def engine_seconds(folder: Path, workers: int) -> float:
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-out-") as out:
        config = EngineConfig(workers=str(workers), out_dir=out)
        with Engine(config) as engine:
            with Stopwatch() as watch:
                summary = engine.run(folder)
    assert summary.pages_failed == 0, summary
    return watch.seconds


def ocrmypdf_command() -> list[str] | None:
    binary = OCRMYPDF_VENV / "bin" / "ocrmypdf"
    if not binary.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(OCRMYPDF_VENV)], check=True, capture_output=True)
            subprocess.run([str(OCRMYPDF_VENV / "bin" / "pip"), "install", "-q", "ocrmypdf"], check=True,
                           capture_output=True, timeout=600)
        except (subprocess.SubprocessError, OSError):
            shutil.rmtree(OCRMYPDF_VENV, ignore_errors=True)
            return None
    return [str(binary)]


def ocrmypdf_seconds(documents: list[Path], workers: int) -> float | None:
    command = ocrmypdf_command()
    if command is None:
        return None
    from pypdf import PdfWriter

    with tempfile.TemporaryDirectory(prefix="pagemill-bench-ocrmypdf-") as scratch:
        merged = Path(scratch) / "all.pdf"
        writer = PdfWriter()
        for path in documents:
            writer.append(str(path))
        writer.write(merged)
        start = time.perf_counter()
        done = subprocess.run([*command, "--jobs", str(workers), "--output-type", "none", "--sidecar",
                               str(Path(scratch) / "all.txt"), str(merged), "-"], capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        print(f"OCRmyPDF failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return seconds


def main(argv: list[str] | None = None) -> dict[str, float | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ocrmypdf", action="store_true")
    args = parser.parse_args(argv)
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="pagemill-bench-archive-") as scratch:
        archive = generate_sample(Path(scratch), pages=args.pages, seed=5, broken=False)
        folder = archive.documents[0].parent
        cpu, pages = tesseract_cpu_seconds(archive.documents, EngineConfig())
        ideal = cpu / args.workers
        one = engine_seconds(folder, 1)
        many = engine_seconds(folder, args.workers)
        ocrmypdf = None if args.no_ocrmypdf else ocrmypdf_seconds(archive.documents, args.workers)
    speedup = one / many
    rows = [
        ["tesseract alone (CPU s / workers): ideal", round(ideal, 2), round(pages / ideal, 2), "1.00"],
        ["pagemill, 1 worker", round(one, 2), round(pages / one, 2), f"{one / ideal:.2f}"],
        [f"pagemill, {args.workers} workers", round(many, 2), round(pages / many, 2), f"{many / ideal:.2f}"],
    ]
    if ocrmypdf is not None:
        rows.append([f"OCRmyPDF --jobs {args.workers}", round(ocrmypdf, 2), round(pages / ocrmypdf, 2),
                     f"{ocrmypdf / ideal:.2f}"])
    print(header(f"End to end: {pages} scanned ticket pages at 300 DPI, {args.workers} workers"))
    print(table(["runner", "wall s", "pages/s", "× ideal"], rows))
    print(f"\nengine / ideal = {many / ideal:.2f} (target ≤ 1.10: {verdict(many / ideal <= 1.10)})")
    print(f"speed-up 1 → {args.workers} workers = {speedup:.2f} (target ≥ 1.85: {verdict(speedup >= 1.85)})")
    if ocrmypdf is not None:
        print(f"engine / OCRmyPDF = {many / ocrmypdf:.2f} (target ≤ 0.8: {verdict(many / ocrmypdf <= 0.8)})")
    else:
        print("OCRmyPDF: not measured (not installable here, or --no-ocrmypdf)")
    return {"ideal": ideal, "engine": many, "one_worker": one, "speedup": speedup, "ocrmypdf": ocrmypdf}


if __name__ == "__main__":
    main()
