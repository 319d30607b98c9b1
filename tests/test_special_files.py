"""Files that are not regular files (a named pipe, a socket) in an archive: never read (a read
would block the run), one clear error naming the file, and the other documents finish."""

from __future__ import annotations

import json
import os
import socket

import pytest
from conftest import noop_config
from pdf_fixtures import text_pdf

import plugins.pdf_ingest as ingest
from engine.api import Engine
from engine.config import EngineConfig
from engine.discovery import UNREAD_PREFIX, iter_documents
from engine.errors import UnsupportedDocumentError

TEXT = "Ticket No.: 554433\nDate: 2026-03-14\nGross: 60,000 lb\nTare: 20,000 lb\nNet: 40,000 lb"


def test_a_named_pipe_is_listed_without_being_read(tmp_path) -> None:
    os.mkfifo(tmp_path / "pipe.pdf")  # opening it for reading would block until a writer came
    [found] = list(iter_documents([str(tmp_path)]))
    assert found.sha256.startswith(UNREAD_PREFIX) and found.size == 0


@pytest.mark.parametrize("make, kind", [
    (lambda path: os.mkfifo(path), "a named pipe"),
    (lambda path: socket.socket(socket.AF_UNIX).bind(str(path)), "a socket"),
])
def test_ingest_refuses_a_special_file_naming_what_it_is(tmp_path, make, kind) -> None:
    path = tmp_path / "special.pdf"
    make(path)
    with pytest.raises(UnsupportedDocumentError) as info:
        [found] = list(iter_documents([str(path)]))  # as a run finds it: listed, never read
        ingest.pagemill_ingest(found, noop_config(None))
    assert str(info.value) == f"not a regular file ({kind})"


def test_a_run_over_a_folder_with_a_named_pipe_finishes_the_other_documents(tmp_path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    text_pdf(archive / "good.pdf", [TEXT])
    os.mkfifo(archive / "pipe.pdf")
    out = tmp_path / "out"
    summary = Engine(EngineConfig(out_dir=str(out), workers="2", page_timeout=30)).run([str(archive)])
    records = {r["document"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert summary.status == "partial"
    assert records[str(archive / "good.pdf")]["status"] in ("ok", "review")
    pipe = records[str(archive / "pipe.pdf")]
    assert pipe["status"] == "failed" and pipe["page"] == 0
    assert pipe["error"]["type"] == "UnsupportedDocumentError" and "named pipe" in pipe["error"]["message"]
