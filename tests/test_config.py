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
     ({"executor": "dask"}, "scheduler"), ({"max_attempts": 0}, "max_attempts"),
     ({"breaker_give_up": -1}, "breaker_give_up")],
)
def test_bad_values_are_config_errors_naming_the_key(changes, word) -> None:
    with pytest.raises(ConfigError, match=word):
        EngineConfig.load(environ={}, **changes)


def test_breaker_give_up_defaults_to_600_s_and_is_set_by_env_and_flag() -> None:
    from engine.cli_options import build_parser, config_overrides

    assert EngineConfig.load(environ={}).breaker_give_up == 600.0
    assert EngineConfig.load(environ={"PAGEMILL_BREAKER_GIVE_UP": "90"}).breaker_give_up == 90.0
    argv = ["run", "in", "--out", "out", "--breaker-give-up", "45"]
    parser, _ = build_parser(argv)
    overrides = config_overrides(parser.parse_args(argv))
    assert EngineConfig.load(environ={"PAGEMILL_BREAKER_GIVE_UP": "90"}, **overrides).breaker_give_up == 45.0


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


# --------------------------------------------------------------------------- tuple-valued keys
def test_a_tuple_valued_key_takes_a_single_string_as_one_item(tmp_path) -> None:
    config = EngineConfig(sinks="sqlite:///x.db", plugins="p.py")
    assert config.sinks == ("sqlite:///x.db",) and config.plugins == ("p.py",)
    assert EngineConfig(plugins=tmp_path / "p.py").plugins == (str(tmp_path / "p.py"),)  # a path too
    assert EngineConfig(plugins=["a.py", "b.mod"]).plugins == ("a.py", "b.mod")  # a list: a tuple
    assert EngineConfig(sinks="sqlite:///x.db").replace(dpi=200).sinks == ("sqlite:///x.db",)
    assert hash(EngineConfig(plugins=["a.py"]).plugins) is not None


def test_an_engine_takes_a_single_sink_and_plugin_string(tmp_path, noop_archive) -> None:
    from engine import Engine

    db = tmp_path / "t.db"
    config = EngineConfig(out_dir=str(tmp_path / "out"), workers="1", sinks=f"sqlite:///{db}", plugins="plugins.noop",
                          load_entry_points=False)
    summary = Engine(config).run(noop_archive([2]))
    assert summary.pages_ok == 2 and db.exists()


# --------------------------------------------------------------------------- executor and scheduler address
def test_a_scheduler_address_alone_means_the_dask_executor() -> None:
    assert EngineConfig(scheduler_address="tcp://10.1.2.3:8786").executor == "dask"
    assert EngineConfig().executor == "local"
    assert EngineConfig.load(environ={"PAGEMILL_SCHEDULER_ADDRESS": "tcp://10.1.2.3:8786"}).executor == "dask"
    assert EngineConfig().replace(scheduler_address="tcp://10.1.2.3:8786").executor == "dask"
    assert EngineConfig(executor="dask", scheduler_address="tcp://h:1").snapshot()["executor"] == "dask"


@pytest.mark.parametrize("executor", ["local", "dask-local"])
def test_a_scheduler_address_with_another_executor_is_a_config_error(executor) -> None:
    with pytest.raises(ConfigError, match="scheduler address tcp://10.1.2.3:8786 is for executor 'dask'"):
        EngineConfig.load(environ={}, executor=executor, scheduler_address="tcp://10.1.2.3:8786")
    with pytest.raises(ConfigError, match="is for executor 'dask'"):
        EngineConfig(executor=executor, scheduler_address="tcp://10.1.2.3:8786").validate()


def test_an_engine_refuses_a_config_that_does_not_validate(tmp_path) -> None:
    from engine import Engine

    config = EngineConfig(out_dir=str(tmp_path / "out"), executor="local", scheduler_address="tcp://10.1.2.3:8786",
                          plugins=("plugins.noop",), load_entry_points=False)
    with pytest.raises(ConfigError, match="is for executor 'dask'"):
        Engine(config)


def test_a_higher_source_choosing_one_of_executor_and_address_overrides_the_other() -> None:
    stored = {"executor": "dask", "scheduler_address": "tcp://a:8786"}
    local = EngineConfig.from_layers([stored, {"executor": "local"}])  # resume DIR --executor local
    assert (local.executor, local.scheduler_address) == ("local", None)
    other = EngineConfig.from_layers([{"executor": "dask-local"}, {"scheduler_address": "tcp://b:8786"}])
    assert (other.executor, other.scheduler_address) == ("dask", "tcp://b:8786")
    kept = EngineConfig.from_layers([stored, {"executor": "dask"}])  # the address from below still holds
    assert kept.scheduler_address == "tcp://a:8786"
    with pytest.raises(ConfigError, match="is for executor 'dask'"):  # both in one source, disagreeing
        EngineConfig.from_layers([{}, {"executor": "local", "scheduler_address": "tcp://b:8786"}])


def test_the_command_line_scheduler_flag_implies_dask_and_conflicts_exit_2(tmp_path, noop_archive) -> None:
    from engine import cli, cli_options

    argv = ["run", str(tmp_path), "--out", str(tmp_path / "out"), "--scheduler", "tcp://10.1.2.3:8786"]
    parser, _ = cli_options.build_parser(argv)
    config = cli.run_config(parser.parse_args(argv))
    assert (config.executor, config.scheduler_address) == ("dask", "tcp://10.1.2.3:8786")
    archive = noop_archive([1])
    for executor in ("local", "dask-local"):
        code = cli.main(["run", str(archive), "--out", str(tmp_path / "out"), "--plugin", "plugins.noop",
                         "--executor", executor, "--scheduler", "tcp://10.1.2.3:8786", "--no-progress"])
        assert code == 2
    assert not (tmp_path / "out").exists()  # refused before anything ran
