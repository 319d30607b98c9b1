"""The README stays true: its opening commands, the example plugin it shows, its table of settings."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from engine.config import EngineConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_opens_with_the_two_commands_and_the_makefile_has_them() -> None:
    first_block = README.split("```")[1]
    assert [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip() and line != "sh"] == [
        "make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_the_example_plugin_in_the_readme_is_the_tested_file() -> None:
    example = (ROOT / "examples" / "overweight_plugin.py").read_text(encoding="utf-8")
    body = example[example.index("from __future__"):].strip()
    blocks = [block[len("python\n"):].strip() for block in README.split("```") if block.startswith("python\n")]
    assert body in blocks


def test_every_setting_is_in_the_configuration_table() -> None:
    table = README[README.index("## Configuration"):README.index("## Benchmarks")]
    keys = set(re.findall(r"`([a-z_]+)`", "\n".join(line.split("|")[1] for line in table.splitlines()
                                                      if line.startswith("| `"))))
    settings = {f.name for f in dataclasses.fields(EngineConfig)} - {"options"}
    assert settings - keys == set()
    assert keys - settings == set()
