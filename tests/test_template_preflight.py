"""A bad --template stops the run before any work, as a usage error (exit 2) naming the template."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import Engine
from engine.config import EngineConfig
from engine.errors import ConfigError
from engine.ledger import LEDGER_NAME
from plugins.template_extract import pagemill_preflight


def bad_templates(tmp_path: Path) -> list[tuple[str, str]]:
    """(--template value, what the error says) for an unknown name, bad TOML, a missing file."""
    broken = tmp_path / "broken.toml"
    broken.write_text("not toml = = =")
    return [("truck_tickt", "no bundled template 'truck_tickt'"), (str(broken), "not readable TOML"),
            (str(tmp_path / "missing.toml"), "file not found")]


def test_the_preflight_hook_checks_the_template(tmp_path) -> None:
    pagemill_preflight(EngineConfig())  # the bundled truck_ticket is fine
    for template, problem in bad_templates(tmp_path):
        with pytest.raises(ConfigError, match=problem) as raised:
            pagemill_preflight(EngineConfig(template=template))
        assert Path(template).stem in str(raised.value)


def test_the_api_raises_before_any_page(noop_archive, tmp_path) -> None:
    archive = noop_archive([3])
    out = tmp_path / "out"
    config = EngineConfig(out_dir=str(out), workers="1", plugins=("plugins.noop", "plugins.template_extract"),
                          load_entry_points=False, template="truck_tickt")
    with pytest.raises(ConfigError, match="truck_tickt"):
        Engine(config).run([archive])
    assert not (out / LEDGER_NAME).exists() and not (out / "results.jsonl").exists()


def test_the_cli_exits_2_before_any_work(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for number, (template, problem) in enumerate(bad_templates(tmp_path)):
        out = tmp_path / f"out{number}"
        done = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(archive), "--out", str(out),
                               "--plugin", "plugins.noop", "--template", template, "--workers", "1", "--no-progress"],
                              capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 2, done.stderr
        assert problem in done.stderr and "Traceback" not in done.stderr
        assert not (out / LEDGER_NAME).exists() and not (out / "results.jsonl").exists()
