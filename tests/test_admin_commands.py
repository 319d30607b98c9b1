"""The commands around runs: a folder without a ledger is a usage error, reading never writes the
ledger, the plugins' checks run before the output folder is made, listings piped whole."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import noop_config

from engine import hookimpl
from engine.api import Engine
from engine.cli import main as pagemill
from engine.errors import CriticalError


class FailingCheck:
    name = "failing_check"

    @hookimpl
    def pagemill_preflight(self, config) -> None:
        raise CriticalError("tesseract is not installed: apt-get install -y tesseract-ocr")


def test_a_failed_plugin_check_leaves_no_output_folder(noop_archive, tmp_path) -> None:
    archive = noop_archive([1])
    out = tmp_path / "new" / "out"
    with pytest.raises(CriticalError, match="tesseract"):
        Engine(noop_config(out), plugins=[FailingCheck()]).run(archive)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", [["status"], ["runs"], ["export", "--format", "csv"], ["resume"]])
def test_a_folder_without_a_ledger_is_a_usage_error(tmp_path, capsys, command) -> None:
    assert pagemill([command[0], str(tmp_path), *command[1:]]) == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["status"], ["runs"], ["export", "--format", "jsonl"]])
def test_reading_an_empty_ledger_file_leaves_it_empty(tmp_path, command) -> None:
    (tmp_path / "ledger.sqlite").touch()
    assert pagemill([command[0], str(tmp_path), *command[1:]]) == 2
    assert [(p.name, p.stat().st_size) for p in tmp_path.iterdir()] == [("ledger.sqlite", 0)]


def test_status_and_export_never_write_the_ledger(noop_archive, tmp_path, capsys) -> None:
    archive = noop_archive([2])
    out = tmp_path / "out"
    Engine(noop_config(out)).run(archive)
    ledger = out / "ledger.sqlite"
    before = ledger.read_bytes()
    ledger.chmod(0o444)  # a ledger this user may only read
    try:
        assert pagemill(["status", str(out), "--json"]) == 0
        assert pagemill(["export", str(out), "--format", "jsonl"]) == 0
    finally:
        ledger.chmod(0o644)
    status = json.loads(capsys.readouterr().out)
    assert status["pages"]["pages"] == 2 and status["runs"][0]["pages"]["pages"] == 2
    assert ledger.read_bytes() == before
    with sqlite3.connect(ledger) as db:
        assert db.execute("select count(*) from runs").fetchone() == (1,)


def test_plugins_piped_to_a_file_are_listed_whole(tmp_path, capsys) -> None:
    folder = tmp_path / ("a-folder-with-a-long-name-" * 4)
    folder.mkdir()
    plugin = folder / "long_named_plugin.py"
    plugin.write_text("from engine import hookimpl\n\n@hookimpl\ndef pagemill_validate(page, fields, config):\n"
                      "    return []\n")
    assert pagemill(["plugins", "--plugin", str(plugin)]) == 0
    lines = capsys.readouterr().out.splitlines()
    mine = [line for line in lines if line.startswith("long_named_plugin\t")]
    assert len(mine) == 1 and str(plugin) in mine[0] and "…" not in "".join(lines)
    assert lines[0].split("\t") == ["plugin", "from", "hooks"]


def test_runs_lists_each_run_with_the_pages_it_committed(noop_archive, tmp_path, capsys) -> None:
    archive = noop_archive([2, 3])
    out = tmp_path / "out"
    Engine(noop_config(out)).run([archive / "doc000.noop"])
    Engine(noop_config(out)).run(archive)
    capsys.readouterr()
    assert pagemill(["runs", str(out)]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows[0][:5] == ["id", "started", "finished", "status", "pages"]
    assert [(row[0], row[3], row[4]) for row in rows[1:]] == [("1", "finished", "2"), ("2", "finished", "3")]


def test_a_run_whose_process_is_gone_shows_as_interrupted_without_writing_the_ledger(tmp_path, capsys) -> None:
    from engine.ledger import Ledger
    from engine.outlock import OutputLock

    out = tmp_path / "out"
    out.mkdir()
    lock = OutputLock(out).acquire()
    ledger = Ledger(out / "ledger.sqlite", lock=lock)
    ledger.start_run({})  # a run that is killed: never finished, marked running
    assert pagemill(["runs", str(out)]) == 0  # its process holds the folder: running
    assert capsys.readouterr().out.splitlines()[1].split("\t")[3] == "running"
    ledger.close()  # the lock goes, as it does when the process is killed
    before = (out / "ledger.sqlite").read_bytes()
    assert pagemill(["runs", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split("\t")[3] == "interrupted (process gone)"
    assert pagemill(["status", str(out), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert run["status"] == "interrupted" and run["process_gone"] is True
    assert (out / "ledger.sqlite").read_bytes() == before
    with sqlite3.connect(out / "ledger.sqlite") as db:
        assert db.execute("select status from runs").fetchall() == [("running",)]
