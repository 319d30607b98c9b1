"""Image formats pagemill does not read are named as such, with the formats it does read."""

from __future__ import annotations

import pytest
from ingest_builders import ingest_and_load, write
from PIL import Image

from engine.errors import UnsupportedDocumentError


@pytest.mark.parametrize("name", ["BMP", "WEBP"])
def test_an_image_format_pagemill_does_not_read_is_named(tmp_path, name) -> None:
    path = tmp_path / f"ticket.{name.lower()}"
    Image.new("RGB", (40, 30), "white").save(path, name)
    with pytest.raises(UnsupportedDocumentError) as info:
        ingest_and_load(path)
    assert str(info.value) == f"unsupported image format {name} (pagemill reads PDF, PNG, JPEG, TIFF)"


def test_a_file_that_only_starts_like_a_bitmap_is_no_image(tmp_path) -> None:
    with pytest.raises(UnsupportedDocumentError, match="not a PDF or image"):
        ingest_and_load(write(tmp_path / "notes.txt", b"BMW service notes, not an image at all"))
