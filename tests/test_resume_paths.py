"""A resume from another working directory: the settings that name files find the same files."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from test_cli import FIELD_PLUGIN, pagemill

from plugins.noop import write_noop_document
from plugins.template_loader import TEMPLATE_DIR


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_relative_template_plugin_and_sink_paths_are_found_by_a_resume_from_elsewhere(noop_archive, tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    archive = noop_archive([2, 1], folder="work/archive")
    shutil.copy(TEMPLATE_DIR / "truck_ticket.toml", work / "tickets.toml")
    (work / "fieldplug.py").write_text(FIELD_PLUGIN.format(name="from_file"))
    first = pagemill("run", "archive", "--out", "out", "--plugin", "plugins.noop", "--plugin", "fieldplug.py",
                     "--template", "tickets.toml", "--sink", "sqlite:///tickets.db", "--no-progress", cwd=work)
    assert first.returncode == 0, first.stderr

    write_noop_document(archive / "doc002.noop", 2)  # new work for the resume
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = pagemill("resume", str(work / "out"), "--no-progress", cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    records = _records(work / "out")
    assert len(records) == 5
    assert all(record["fields"]["from_file"]["value"] == "x" for record in records)
    assert not (elsewhere / "tickets.db").exists()
    with sqlite3.connect(work / "tickets.db") as db:
        assert db.execute("select count(*), count(f_from_file) from tickets").fetchone() == (5, 5)


def test_names_stay_names_and_paths_become_absolute(tmp_path) -> None:
    from engine.config_paths import with_absolute_paths

    (tmp_path / "plugfile").write_text("")
    stored = with_absolute_paths({"template": "truck_ticket", "plugins": ["plugins.noop", "a/p.py", "plugfile"],
                                  "sinks": ["sqlite:///t.db", "sqlite:////abs/t.db"], "dpi": 300}, str(tmp_path))
    assert stored == {"template": "truck_ticket", "plugins": ["plugins.noop", f"{tmp_path}/a/p.py", f"{tmp_path}/plugfile"],
                      "sinks": [f"sqlite:///{tmp_path}/t.db", "sqlite:////abs/t.db"], "dpi": 300}
    assert with_absolute_paths({"template": "../t.toml"}, str(tmp_path))["template"] == str(tmp_path.parent / "t.toml")


def _runs(out: Path) -> list[dict]:
    with sqlite3.connect(out / "ledger.sqlite") as db:
        return [json.loads(config) for (config,) in db.execute("select config from runs order by id")]


def test_a_resume_of_a_run_given_a_password_needs_the_password_again(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    out = tmp_path / "out"
    first = pagemill("run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--password", "s3cret",
                     "--no-progress", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "s3cret" not in json.dumps(_runs(out)) and _runs(out)[0]["password_given"] is True

    missing = pagemill("resume", str(out), "--no-progress", cwd=tmp_path)
    assert missing.returncode == 2
    assert "--password" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    assert len(_runs(out)) == 1  # refused before the run started

    given = pagemill("resume", str(out), "--no-progress", cwd=tmp_path, env={"PAGEMILL_PASSWORD": "s3cret"})
    assert given.returncode == 0, given.stderr
    assert _runs(out)[-1]["password_given"] is True
    without = pagemill("run", str(archive), "--out", str(tmp_path / "plain"), "--plugin", "plugins.noop",
                       "--no-progress", cwd=tmp_path)
    assert without.returncode == 0 and pagemill("resume", str(tmp_path / "plain"), "--no-progress").returncode == 0
