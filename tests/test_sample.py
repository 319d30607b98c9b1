"""The sample archive generator: deterministic, several layouts, truth consistent, one broken file."""

from __future__ import annotations

import json

from pypdf import PdfReader

from engine.sample import generate_sample


def test_sample_is_deterministic_and_complete(tmp_path) -> None:
    first = generate_sample(tmp_path / "a", pages=14, seed=9)
    second = generate_sample(tmp_path / "b", pages=14, seed=9)
    assert [p.read_bytes() for p in first.documents] == [p.read_bytes() for p in second.documents]
    rows = [json.loads(line) for line in first.truth_path.read_text().splitlines()]
    assert len(rows) == 14
    assert sum(len(PdfReader(p).pages) for p in first.documents) == 14
    assert len({row["layout"] for row in rows}) >= 3
    assert any(not row["clean"] for row in rows) and any(row["clean"] for row in rows)
    for row in rows:
        fields = row["fields"]
        assert fields["net_lb"] == fields["gross_lb"] - fields["tare_lb"] or abs(
            fields["net_lb"] - (fields["gross_lb"] - fields["tare_lb"])) <= 2  # kg layouts round
        assert fields["net_tons"] == round(fields["net_lb"] / 2000, 2)
    assert first.broken_path is not None and first.broken_path.parent == first.documents[0].parent
    assert not first.broken_path.read_bytes().rstrip().endswith(b"%%EOF")


def test_pages_are_single_full_page_images(tmp_path) -> None:
    archive = generate_sample(tmp_path / "s", pages=2, seed=1, broken=False)
    page = PdfReader(archive.documents[0]).pages[0]
    assert len(page.images) == 1 and page.extract_text().strip() == ""
    assert abs(float(page.mediabox.width) - 612) < 1  # 8.5 in at 72 points an inch
