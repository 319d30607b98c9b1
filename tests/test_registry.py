"""Plugin discovery: entry points, --plugin paths and modules, objects; clear load errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from engine import hookimpl
from engine.errors import PluginLoadError
from engine.records import Field
from engine.registry import PluginRegistry

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
