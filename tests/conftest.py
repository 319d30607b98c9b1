from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from plugins.noop import write_noop_document

FAULTS = str(Path(__file__).parent / "faults.py")
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"

os.environ.setdefault("OMP_THREAD_LIMIT", "1")


@pytest.fixture(autouse=True)
def pillow_pixel_limit_restored():
    """Ingest sets Pillow's process-wide pixel limit (in workers); tests that ingest in-process
    must not hand their limit to the tests after them."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = limit


@pytest.fixture
def noop_archive(tmp_path: Path):
    """make(pages_per_document) -> folder of .noop documents."""

    def make(pages: list[int], folder: str = "archive") -> Path:
        root = tmp_path / folder
        root.mkdir(exist_ok=True)
        for number, count in enumerate(pages):
            write_noop_document(root / f"doc{number:03d}.noop", count)
        return root

    return make


def noop_folders(tmp_path: Path, **pages: list[int]) -> dict[str, Path]:
    """One folder per name, of .noop documents with the given page counts."""
    made = {}
    for name, counts in pages.items():
        folder = tmp_path / name
        folder.mkdir()
        for number, count in enumerate(counts):
            write_noop_document(folder / f"{name}{number}.noop", count)
        made[name] = folder
    return made


def noop_config(out: Path | None, **changes):
    from engine.config import EngineConfig

    options = {"noop_ms": changes.pop("noop_ms", 0)}
    options.update(changes.pop("options", {}))
    plugins = tuple(changes.pop("plugins", ())) + ("plugins.noop",)
    values = dict(out_dir=str(out) if out else None, workers="2", plugins=plugins, options=options,
                  load_entry_points=False)
    values.update(changes)
    return EngineConfig(**values)


@pytest.fixture
def tesseract_available() -> bool:
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed")
    return True
