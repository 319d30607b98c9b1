"""``--sink sqlite:///path.db``: a database that cannot be opened is a usage error naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.db_sink import sink_from_url
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_a_sink_in_a_missing_folder_is_a_config_error_naming_the_path(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"nodir/x\.db.*folder .*nodir does not exist"):
        sink_from_url(f"sqlite:///{tmp_path / 'nodir' / 'x.db'}")


def test_a_sink_that_is_not_a_database_is_a_config_error(tmp_path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all " * 100)
    with pytest.raises(ConfigError, match="junk.db"):
        sink_from_url(f"sqlite:///{junk}")


def test_the_cli_says_one_line_and_exits_2_for_a_sink_it_cannot_open(tmp_path, noop_archive) -> None:
    archive = noop_archive([1])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(archive), "--out", str(tmp_path / "out"), "--plugin", "plugins.noop",
         "--sink", "sqlite:///nodir/x.db", "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "nodir/x.db" in line]


# a plugin that writes down each page handed on, and kills the whole run (kill -9) at the first
# page of the first run: committed pages of that batch were then never handed on
KILL_AT_FIRST_PAGE = """
import os, signal
from pathlib import Path
from engine import hookimpl

@hookimpl
def pagemill_page_done(result):
    with open({seen!r}, "a") as handle:
        handle.write(f"{{result.sha256}}:{{result.page}}\\n")
    marker = Path({marker!r})
    if not marker.exists():
        marker.touch()
        os.killpg(os.getpgid(0), signal.SIGKILL)
"""


def test_pages_committed_but_not_handed_on_before_kill_9_are_handed_on_by_the_resume(tmp_path, noop_archive) -> None:
    import sqlite3

    archive = noop_archive([6, 6, 6])
    seen, sink = tmp_path / "seen.txt", tmp_path / "tickets.db"
    plugin = tmp_path / "killer.py"
    plugin.write_text(KILL_AT_FIRST_PAGE.format(seen=str(seen), marker=str(tmp_path / "killed")))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(archive), "--out", str(out), "--plugin", "plugins.noop",
         "--plugin", str(plugin), "--sink", f"sqlite:///{sink}", "--workers", "2", "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, start_new_session=True,
    )
    assert killed.returncode == -9
    with sqlite3.connect(out / "ledger.sqlite") as db:
        committed = db.execute("select count(*) from pages").fetchone()[0]
    assert committed > len(seen.read_text().splitlines()) == 1  # committed, not handed on

    resumed = subprocess.run([sys.executable, "-m", "engine.cli", "resume", str(out), "--no-progress"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(out / "ledger.sqlite") as db:
        every = {f"{sha}:{index + 1}" for sha, index in db.execute("select sha256, page_index from pages")}
    assert len(every) == 18
    assert set(seen.read_text().splitlines()) == every  # each page handed on, at least once
    with sqlite3.connect(sink) as db:
        assert db.execute("select count(*), count(distinct sha256 || ':' || page) from tickets").fetchone() == (18, 18)
