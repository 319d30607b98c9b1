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
