"""Plugin discovery: entry points, --plugin paths and modules, objects; clear load errors."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

from engine import hookimpl
from engine.config import EngineConfig
from engine.errors import PluginLoadError
from engine.records import Field
from engine.registry import PluginRegistry, module_name_for

EXTRA_PLUGIN = '''
from engine import hookimpl
from engine.records import Field

@hookimpl
def pagemill_extract(page, ocr, config):
    return [Field("extra", "yes", 0.9)]
'''


class ObjectPlugin:
    name = "object_plugin"

    @hookimpl
    def pagemill_extract(self, page, ocr, config):
        return [Field("from_object", 1, 1.0)]


def test_builtin_plugins_come_from_entry_points() -> None:
    registry = PluginRegistry.for_run()
    rows = {row.name: row for row in registry.listing()}
    for name in ("pdf_ingest", "tesseract_ocr", "template_extract", "ticket_validate"):
        assert name in rows, name
        assert rows[name].origin.startswith("entry point")
    assert "pagemill_ocr" in rows["tesseract_ocr"].hooks
    assert "pagemill_extract" in rows["template_extract"].hooks


def test_plugin_from_path_and_rebuilt_from_specs(tmp_path: Path) -> None:
    plugin = tmp_path / "extra_fields.py"
    plugin.write_text(EXTRA_PLUGIN)
    registry = PluginRegistry.for_run([str(plugin)], load_entry_points=False)
    assert [row.name for row in registry.listing()] == ["extra_fields"]
    specs = pickle.loads(pickle.dumps(registry.specs))
    rebuilt = PluginRegistry.from_specs(specs)
    fields = rebuilt.hook.pagemill_extract(page=None, ocr=None, config=None)
    assert fields == [[Field("extra", "yes", 0.9)]]


def test_plugin_object_travels_pickled() -> None:
    registry = PluginRegistry.for_run(objects=[ObjectPlugin()], load_entry_points=False)
    rebuilt = PluginRegistry.from_specs(registry.specs)
    assert rebuilt.hook.pagemill_extract(page=None, ocr=None, config=None) == [[Field("from_object", 1, 1.0)]]
    assert registry.listing()[0].origin == "object passed in Python"


def test_plugin_module_by_name() -> None:
    registry = PluginRegistry.for_run(["plugins.noop"], load_entry_points=False)
    row = registry.listing()[0]
    assert row.name == "plugins.noop" and "pagemill_ingest" in row.hooks


def test_plugin_that_fails_to_import_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("import definitely_not_a_module\n")
    with pytest.raises(PluginLoadError) as info:
        PluginRegistry.for_run([str(broken)], load_entry_points=False)
    message = str(info.value)
    assert "broken_plugin.py" in message and "definitely_not_a_module" in message
    with pytest.raises(PluginLoadError, match="no_such_module"):
        PluginRegistry.for_run(["no_such_module"], load_entry_points=False)
    with pytest.raises(PluginLoadError, match="not found"):
        PluginRegistry.for_run([str(tmp_path / "missing.py")], load_entry_points=False)


def test_plugin_with_a_misspelled_hook_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "typo_plugin.py"
    bad.write_text("from engine import hookimpl\n@hookimpl\ndef pagemill_extrakt(page):\n    return []\n")
    with pytest.raises(PluginLoadError, match="typo_plugin"):
        PluginRegistry.for_run([str(bad)], load_entry_points=False)


def test_unpicklable_object_is_a_clear_error() -> None:
    class Local:  # defined in a function: cannot be pickled
        @hookimpl
        def pagemill_extract(self, page, ocr, config):
            return []

    with pytest.raises(PluginLoadError, match="module level"):
        PluginRegistry.for_run(objects=[Local()], load_entry_points=False)


def test_plugin_of_traceback_names_the_raising_plugin(tmp_path: Path) -> None:
    plugin = tmp_path / "raiser.py"
    plugin.write_text("from engine import hookimpl\n@hookimpl\ndef pagemill_extract(page, ocr, config):\n    raise ValueError('x')\n")
    registry = PluginRegistry.for_run([str(plugin)], load_entry_points=False)
    try:
        registry.hook.pagemill_extract(page=None, ocr=None, config=None)
    except ValueError as exc:
        assert registry.plugin_of_traceback(exc.__traceback__) == "raiser"
    else:  # pragma: no cover
        pytest.fail("the plugin did not raise")


FIELD_PLUGIN = '''
from engine import hookimpl
from engine.records import Field

@hookimpl
def pagemill_extract(page, ocr, config):
    return [Field("{name}", 1, 1.0)]
'''


def _field_plugin(path: Path, field: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FIELD_PLUGIN.format(name=field))
    return path


def test_plugin_files_of_one_name_both_load_and_the_same_file_once(tmp_path: Path) -> None:
    first = _field_plugin(tmp_path / "a" / "plugin.py", "from_a")
    second = _field_plugin(tmp_path / "b" / "plugin.py", "from_b")
    builtin_name = _field_plugin(tmp_path / "mine" / "template_extract.py", "mine")
    registry = PluginRegistry.for_run([str(first), str(second), str(first), str(builtin_name)])
    names = [row.name for row in registry.listing()]
    assert names.count("plugin") == 1 and "b/plugin.py" in names and "mine/template_extract.py" in names
    assert "template_extract" in names  # the built-in is still there
    assert len(names) == len(set(names))
    rebuilt = PluginRegistry.from_specs([spec for spec in registry.specs if spec.kind == "path"])  # as a worker does
    values = {f.name for fields in rebuilt.hook.pagemill_extract(page=None, ocr=None, config=None) for f in fields}
    assert values == {"from_a", "from_b", "mine"}


def test_plugins_from_files_of_one_name_are_told_apart_in_tracebacks(tmp_path: Path) -> None:
    raiser = "from engine import hookimpl\n@hookimpl\ndef pagemill_validate(page, fields, config):\n    raise ValueError('x')\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "plugin.py").write_text("from engine import hookimpl\n@hookimpl\ndef pagemill_validate(page, fields, config):\n    return []\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "plugin.py").write_text(raiser)
    registry = PluginRegistry.for_run([str(tmp_path / "a" / "plugin.py"), str(tmp_path / "b" / "plugin.py")],
                                      load_entry_points=False)
    with pytest.raises(ValueError) as info:
        registry.hook.pagemill_validate(page=None, fields={}, config=None)
    assert registry.plugin_of_traceback(info.value.__traceback__) == "b/plugin.py"


class NamedPlugin:
    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def pagemill_extract(self, page, ocr, config):
        return []


def test_a_name_clash_that_cannot_be_resolved_is_a_load_error(tmp_path: Path, monkeypatch) -> None:
    same = NamedPlugin("twin")
    registry = PluginRegistry.for_run(objects=[same, same], load_entry_points=False)  # the same object: once
    assert [row.name for row in registry.listing()] == ["twin"]
    with pytest.raises(PluginLoadError, match="twin.*has the name of another plugin"):
        PluginRegistry.for_run(objects=[NamedPlugin("twin"), NamedPlugin("twin")], load_entry_points=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ticket_validate.py").write_text("x = 1\n")  # a module of the current folder, named as a built-in
    with pytest.raises(PluginLoadError, match="ticket_validate.*has the name of another plugin"):
        PluginRegistry.for_run(["ticket_validate"])


def test_a_module_already_loaded_by_its_entry_point_is_not_loaded_twice() -> None:
    registry = PluginRegistry.for_run(["plugins.template_extract"])
    assert [row.name for row in registry.listing()].count("template_extract") == 1
    assert "plugins.template_extract" not in [row.name for row in registry.listing()]


def test_a_module_of_the_current_folder_is_found_and_sys_path_left_alone(tmp_path: Path, monkeypatch) -> None:
    import sys

    package = tmp_path / "cwd_plugins_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    _field_plugin(package / "extra.py", "from_cwd")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    try:
        registry = PluginRegistry.for_run(["cwd_plugins_pkg.extra"], load_entry_points=False)
        assert sys.path == before
        spec = registry.specs[0]
        assert spec.search_path == str(tmp_path) and str(tmp_path) in registry.listing()[0].origin
        for name in ("cwd_plugins_pkg", "cwd_plugins_pkg.extra"):  # as a fresh worker process finds it
            sys.modules.pop(name)
        rebuilt = PluginRegistry.from_specs(registry.specs)
        assert rebuilt.hook.pagemill_extract(page=None, ocr=None, config=None) == [[Field("from_cwd", 1, 1.0)]]
        assert sys.path == before
    finally:
        for name in ("cwd_plugins_pkg", "cwd_plugins_pkg.extra"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize("body, words", [("import sys\nsys.exit(5)\n", "sys.exit(5)"),
                                          ("raise SystemExit('bye')\n", "sys.exit('bye')"),
                                          ("raise GeneratorExit()\n", "GeneratorExit")])
def test_a_plugin_that_exits_at_import_is_a_load_error_naming_it(tmp_path: Path, monkeypatch, body, words) -> None:
    (tmp_path / "quitter.py").write_text(body)
    with pytest.raises(PluginLoadError) as info:
        PluginRegistry.for_run([str(tmp_path / "quitter.py")], load_entry_points=False)
    assert "quitter.py" in str(info.value) and words in str(info.value)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginLoadError, match="quitter"):
        PluginRegistry.for_run(["quitter"], load_entry_points=False)


def test_ctrl_c_while_a_plugin_imports_stays_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text("raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        PluginRegistry.for_run([str(tmp_path / "slow.py")], load_entry_points=False)


def test_a_plugin_file_is_read_from_its_source_every_time_and_leaves_no_bytecode_beside_it(tmp_path, monkeypatch) -> None:
    from engine.registry import _import_path

    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as where PYTHONDONTWRITEBYTECODE is not set

    plugin = tmp_path / "versioned.py"
    modules = []
    for version in ("1", "2"):  # the same size, written within the same second
        plugin.write_text(f"VERSION = {version!r}\n")
        sys.modules.pop(module_name_for(plugin), None)
        modules.append(_import_path(str(plugin)))
    assert [module.VERSION for module in modules] == ["1", "2"]
    assert not (tmp_path / "__pycache__").exists()


class Named:
    """A plugin class whose instances are told apart by their ``name``."""

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name

    @hookimpl
    def pagemill_extract(self, page, ocr, config):
        return []


class HoldsALock:
    name = "holds_a_lock"

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()

    @hookimpl
    def pagemill_extract(self, page, ocr, config):
        return []


def test_two_instances_of_one_class_are_told_to_get_a_name_of_their_own() -> None:
    with pytest.raises(PluginLoadError, match="give one of them a `name` attribute of its own"):
        PluginRegistry.for_run(objects=[Named(), Named()], load_entry_points=False)
    registry = PluginRegistry.for_run(objects=[Named("first"), Named("second")], load_entry_points=False)
    assert [row.name for row in registry.listing()] == ["first", "second"]


def test_an_object_that_cannot_be_pickled_is_told_why() -> None:
    with pytest.raises(PluginLoadError) as raised:
        PluginRegistry.for_run(objects=[HoldsALock()], load_entry_points=False)
    message = str(raised.value)
    assert "holds_a_lock cannot be pickled" in message and "lock" in message
    assert "define" not in message  # its class is at module level already

    class Local:
        @hookimpl
        def pagemill_extract(self, page, ocr, config):
            return []

    with pytest.raises(PluginLoadError, match="defined inside a function.*define the class at module level"):
        PluginRegistry.for_run(objects=[Local()], load_entry_points=False)


def test_strings_among_the_plugin_objects_are_plugin_refs(tmp_path: Path) -> None:
    plugin = tmp_path / "extra_fields.py"
    plugin.write_text(EXTRA_PLUGIN)
    registry = PluginRegistry.for_run(objects=["plugins.noop", plugin], load_entry_points=False)
    rows = {row.name: row for row in registry.listing()}
    assert rows["plugins.noop"].origin == "module plugins.noop" and "pagemill_ingest" in rows["plugins.noop"].hooks
    assert rows["extra_fields"].origin.startswith("file ") and "pagemill_extract" in rows["extra_fields"].hooks
    assert "str" not in rows


def test_an_engine_loads_plugin_refs_like_the_command_and_stores_them_for_resume(tmp_path: Path) -> None:
    from engine import Engine

    plugin = tmp_path / "extra_fields.py"
    plugin.write_text(EXTRA_PLUGIN)
    engine = Engine(EngineConfig(load_entry_points=False), plugins=["plugins.noop", str(plugin), ObjectPlugin()])
    assert engine.config.plugins == ("plugins.noop", str(plugin))
    assert {row.name for row in engine.registry.listing()} == {"plugins.noop", "extra_fields", "object_plugin"}
    engine.close()


GROUPED_PLUGIN = '''
from engine import hookimpl

@hookimpl
def pagemill_add_options(parser):
    group = parser.add_argument_group("grouped")
    group.add_argument("--grp-level", type=int, default=11, help="grouped option (11)")
'''


def test_an_option_in_a_group_of_the_plugins_own_is_read_like_any_other(tmp_path: Path, monkeypatch) -> None:
    from engine.cli import run_config
    from engine.cli_options import build_parser
    from engine.plugin_options import plugin_option_specs_of

    monkeypatch.chdir(tmp_path)
    plugin = tmp_path / "grouped.py"
    plugin.write_text(GROUPED_PLUGIN)
    argv = ["run", "in", "--out", "o", "--plugin", str(plugin)]
    parser, _ = build_parser(argv)
    assert run_config(parser.parse_args(argv)).options["grp_level"] == 11  # its default
    assert run_config(parser.parse_args([*argv, "--grp-level", "3"])).options["grp_level"] == 3
    monkeypatch.setenv("PAGEMILL_GRP_LEVEL", "4")
    assert run_config(parser.parse_args(argv)).options["grp_level"] == 4
    help_text = parser._subparsers._group_actions[0].choices["run"].format_help()
    assert "grouped:\n  --grp-level" in help_text
    registry = PluginRegistry.for_run([str(plugin)], load_entry_points=False)
    assert plugin_option_specs_of(registry)["grp_level"].default == 11
