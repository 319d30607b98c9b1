"""EngineConfig: defaults < pagemill.toml < PAGEMILL_* < explicit values; validation."""

from __future__ import annotations

import os

import pytest

from engine.config import EngineConfig
from engine.errors import ConfigError


def test_sources_in_order(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pagemill.toml").write_text('[pagemill]\ndpi = 200\nlang = "deu"\npsm = 4\n')
    config = EngineConfig.load(environ={"PAGEMILL_LANG": "fra", "PAGEMILL_PSM": "11"}, psm=3, dpi=None)
    assert config.dpi == 200  # file
    assert config.lang == "fra"  # env beats file
    assert config.psm == 3  # explicit beats env
    assert config.review_below == 0.6  # default


def test_env_types_are_coerced() -> None:
    config = EngineConfig.load(environ={"PAGEMILL_FORCE_OCR": "true", "PAGEMILL_PAGE_TIMEOUT": "12.5",
                                        "PAGEMILL_PLUGINS": "a.py, b.mod"})
    assert config.force_ocr is True and config.page_timeout == 12.5
    assert config.plugins == ("a.py", "b.mod")


@pytest.mark.parametrize("workers, bounds", [("auto", (1, os.cpu_count() or 1)), ("3", (3, 3)), ("2:6", (2, 6))])
def test_worker_bounds(workers, bounds) -> None:
    assert EngineConfig(workers=workers).worker_bounds() == bounds


@pytest.mark.parametrize(
    "changes, word",
    [({"workers": "0"}, "workers"), ({"workers": "4:2"}, "workers"), ({"workers": "many"}, "workers"),
     ({"priority": "asap"}, "priority"), ({"dpi": 5}, "dpi"), ({"review_below": 2}, "review_below"),
     ({"executor": "dask"}, "scheduler"), ({"max_attempts": 0}, "max_attempts")],
)
def test_bad_values_are_config_errors_naming_the_key(changes, word) -> None:
    with pytest.raises(ConfigError, match=word):
        EngineConfig.load(environ={}, **changes)


def test_bad_env_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dpi"):
        EngineConfig.load(environ={"PAGEMILL_DPI": "lots"})


def test_unknown_keys_become_plugin_options() -> None:
    config = EngineConfig.from_mapping({"dpi": 150, "my_plugin_level": 3})
    assert config.options == {"my_plugin_level": 3}


def test_snapshot_never_stores_the_password() -> None:
    assert "password" not in EngineConfig(password="secret").snapshot()


def _max_gross() -> dict:
    from engine.config import OptionSpec

    return {"max_gross": OptionSpec(default=80000.0, convert=float)}


def test_plugin_options_follow_the_same_precedence(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert EngineConfig.load(environ={}, plugin_options=_max_gross()).options == {"max_gross": 80000.0}  # default
    (tmp_path / "pagemill.toml").write_text("[pagemill]\nmax_gross = 123\n")
    assert EngineConfig.load(environ={}, plugin_options=_max_gross()).options["max_gross"] == 123  # file
    env = {"PAGEMILL_MAX_GROSS": "777"}
    assert EngineConfig.load(environ=env, plugin_options=_max_gross()).options["max_gross"] == 777.0  # env
    given = EngineConfig.load(environ=env, plugin_options=_max_gross(), options={"max_gross": 500})
    assert given.options["max_gross"] == 500  # arguments


def test_explicit_options_beat_the_files_plugin_keys(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pagemill.toml").write_text('[pagemill]\nmax_gross = 123\nlevel = 1\n[pagemill.options]\ncolor = "red"\n')
    config = EngineConfig.load(environ={}, options={"max_gross": 500, "color": "blue"})
    assert config.options == {"max_gross": 500, "level": 1, "color": "blue"}


def test_a_bad_plugin_option_in_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="PAGEMILL_MAX_GROSS"):
        EngineConfig.load(environ={"PAGEMILL_MAX_GROSS": "heavy"}, plugin_options=_max_gross())


def test_plugins_named_by_every_source_add_up(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pagemill.toml").write_text('plugins = ["file.py", "both.mod"]\n')
    config = EngineConfig.load(environ={"PAGEMILL_PLUGINS": "env.py,both.mod"}, plugins=("cli.py",))
    assert config.plugins == ("file.py", "both.mod", "env.py", "cli.py")


def test_priority_and_out_dir_come_from_file_and_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pagemill.toml").write_text('priority = "low"\nout_dir = "from-file"\n')
    assert (EngineConfig.load(environ={}).priority, EngineConfig.load(environ={}).out_dir) == ("low", "from-file")
    config = EngineConfig.load(environ={"PAGEMILL_PRIORITY": "high", "PAGEMILL_OUT_DIR": "from-env"})
    assert (config.priority, config.out_dir) == ("high", "from-env")


def test_snapshot_leaves_out_the_one_shot_flags() -> None:
    snapshot = EngineConfig(fresh=True, retry_failed=True, dpi=200).snapshot()
    assert "fresh" not in snapshot and "retry_failed" not in snapshot and snapshot["dpi"] == 200
    assert EngineConfig.from_mapping(snapshot).fresh is False


def _warnings_of(action) -> list[str]:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="WARNING")
    try:
        action()
    finally:
        logger.remove(sink)
    return lines


def test_a_key_of_the_file_that_is_no_setting_nor_plugin_option_is_warned_about_once(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pagemill.toml").write_text('wrokers = 1\npage_timout = 5\nmax_gross = 90000\ncolour = "red"\n'
                                            '[options]\nmax_gros = 1\n')
    loaded: list[EngineConfig] = []
    lines = _warnings_of(lambda: loaded.append(EngineConfig.load(environ={}, plugin_options=_max_gross())))
    assert lines == ["pagemill.toml: unknown key 'wrokers' (did you mean 'workers'?)",
                     "pagemill.toml: unknown key 'page_timout' (did you mean 'page_timeout'?)",
                     "pagemill.toml: unknown key 'colour'",
                     "pagemill.toml: unknown key 'options.max_gros' (did you mean 'max_gross'?)"]
    assert loaded[0].options["max_gross"] == 90000.0 and loaded[0].workers == "auto"
    # without the plugins' options nothing can be told apart: no warning then
    assert _warnings_of(lambda: EngineConfig.load(environ={})) == []


@pytest.mark.parametrize("text", ['max_gross = "heavy"', "max_gross = [1, 2]", "[options]\nmax_gross = true"])
def test_a_plugin_option_of_the_wrong_type_in_the_file_names_key_and_file(tmp_path, monkeypatch, text) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pagemill.toml").write_text(text + "\n")
    with pytest.raises(ConfigError, match=r"^pagemill.toml: (options\.)?max_gross: cannot use"):
        EngineConfig.load(environ={}, plugin_options=_max_gross())


def test_a_plugin_option_in_the_file_is_read_with_its_type(tmp_path, monkeypatch) -> None:
    from engine.config import OptionSpec, parse_bool

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pagemill.toml").write_text("max_gross = 85000\nstrict = true\n")
    specs = {**_max_gross(), "strict": OptionSpec(default=False, convert=parse_bool)}
    config = EngineConfig.load(environ={}, plugin_options=specs)
    assert config.options == {"max_gross": 85000.0, "strict": True}
    assert isinstance(config.options["max_gross"], float)


def test_an_explicit_config_gets_the_plugin_options_defaults_it_leaves_unset() -> None:
    from engine.config import OptionSpec

    specs = {**_max_gross(), "level": OptionSpec(default=5, convert=int), "color": OptionSpec(default=None)}
    config = EngineConfig(options={"level": 7, "max_gross": None}).with_option_defaults(specs)
    assert config.options == {"level": 7, "max_gross": 80000.0}
