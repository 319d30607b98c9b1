"""Finding documents: folders, stdin lists, unreadable paths, hidden entries, empty inputs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from loguru import logger

from engine.discovery import PeekedLines, check_inputs, iter_documents, iter_paths, unread_key
from engine.errors import ConfigError


@pytest.fixture
def log_lines():
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(f"{message.record['level'].name} {message.record['message']}"),
                      level="DEBUG")
    yield lines
    logger.remove(sink)


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.pdf").write_bytes(b"%PDF-a")
    (root / "sub" / "b.pdf").write_bytes(b"%PDF-b")
    return root


def test_a_folder_listed_on_stdin_is_searched_like_one_on_the_command_line(tmp_path) -> None:
    folder = _tree(tmp_path / "archive")
    single = tmp_path / "single.pdf"
    single.write_bytes(b"%PDF-single")
    stdin = io.StringIO(f"{single}\n\n{folder}\n{folder / 'a.pdf'}\n")
    assert [p.name for p in iter_paths(["-"], stdin=stdin)] == ["single.pdf", "a.pdf", "b.pdf"]


def test_a_path_that_cannot_be_read_is_a_document_keyed_by_its_path(tmp_path) -> None:
    good = tmp_path / "good.pdf"
    good.write_bytes(b"%PDF-good")
    stdin = io.StringIO(f"{good}\n{tmp_path / 'nothere.pdf'}\n")
    documents = list(iter_documents(["-"], "high", stdin=stdin))
    assert [Path(d.path).name for d in documents] == ["good.pdf", "nothere.pdf"]
    missing = documents[1]
    assert missing.sha256 == unread_key(tmp_path / "nothere.pdf") and missing.sha256.startswith("unread:")
    assert missing.priority == "high" and missing.size == 0
    assert len(documents[0].sha256) == 64 and documents[0].sha256 != missing.sha256


def test_inputs_with_no_document_at_all_are_a_usage_error_naming_them(tmp_path) -> None:
    empty = tmp_path / "empty"
    (empty / ".git").mkdir(parents=True)
    (empty / ".DS_Store").write_bytes(b"x")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ConfigError, match=f"no documents found in {empty}, {other}"):
        check_inputs([str(empty), str(other)])
    archive = _tree(tmp_path / "archive")
    assert check_inputs([str(empty), str(archive)]) == [str(empty), str(archive)]  # one has documents
    assert check_inputs(["-"]) == ["-"]  # stdin is checked by the command that reads it


def test_hidden_entries_are_left_out_and_counted_per_folder(tmp_path, log_lines) -> None:
    archive = _tree(tmp_path / "archive")
    (archive / ".DS_Store").write_bytes(b"x")
    (archive / ".git").mkdir()
    (archive / ".git" / "HEAD.pdf").write_bytes(b"%PDF-no")
    (archive / "sub" / ".hidden.pdf").write_bytes(b"%PDF-no")
    empty = tmp_path / "empty"
    empty.mkdir()
    names = [p.name for p in iter_paths([str(archive), str(empty)])]
    assert names == ["a.pdf", "b.pdf"]
    assert f"INFO {archive}: 3 hidden file(s) or folder(s) left out (names starting with a dot)" in log_lines
    assert f"WARNING no documents found in {empty}" in log_lines


def test_peeked_lines_give_back_the_line_read_ahead() -> None:
    lines = PeekedLines(io.StringIO("\n  \nfirst\nsecond\n"))
    assert not lines.empty()
    assert list(lines) == ["first\n", "second\n"]
    assert PeekedLines(io.StringIO("\n \n")).empty()


def test_a_folders_files_come_larger_first_within_a_window_ties_in_name_order(tmp_path) -> None:
    from engine.discovery import FOLDER_WINDOW

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name, size in (("a.pdf", 10), ("b.pdf", 30), ("c.pdf", 10), ("sub/d.pdf", 20)):
        (folder / name).write_bytes(b"x" * size)
    given = tmp_path / "given.pdf"
    given.write_bytes(b"x")
    order = [p.relative_to(tmp_path).as_posix() for p in iter_paths([str(given), str(folder)])]
    assert order == ["given.pdf", "in/b.pdf", "in/sub/d.pdf", "in/a.pdf", "in/c.pdf"]

    many = tmp_path / "many"
    many.mkdir()
    for index in range(FOLDER_WINDOW + 1):  # the largest is the last by name, beyond the first window
        (many / f"f{index:04d}.pdf").write_bytes(b"x" * (100 if index == FOLDER_WINDOW else 1))
    names = [p.name for p in iter_paths([str(many)])]
    assert len(names) == FOLDER_WINDOW + 1 and names[0] == "f0000.pdf"  # the look-ahead is bounded
    assert names.index(f"f{FOLDER_WINDOW:04d}.pdf") == 1  # taken as soon as it enters the window
