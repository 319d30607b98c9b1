"""A plugin that breaks the contract is named in one line: a stage hook returning the wrong type fails
its pages (the run goes on), a parent-side hook that raises stops the run naming it, and an option
that clashes with another is a load error."""

from __future__ import annotations

import json
import multiprocessing

import pytest
from conftest import noop_config

from engine import Engine, Field, hookimpl
from engine.config import EngineConfig
from engine.errors import CriticalError, PluginError, PluginLoadError
from engine.gates import CallGate
from engine.pipeline import PagePipeline, StageError
from engine.progress import ProgressBoard, SlotWriter
from engine.records import Document, PageTask
from engine.registry import PluginRegistry

BOARD = ProgressBoard(1, multiprocessing.get_context("spawn"))


class ReturnsDict:
    name = "returns_dict"

    @hookimpl
    def pagemill_extract(self, page, ocr, config):
        return {"x": Field("x", 1, 0.9)}


class ReturnsField:
    name = "returns_field"

    @hookimpl
    def pagemill_extract(self, page, ocr, config):
        return Field("x", 1, 0.9)


class IssueStrings:
    name = "issue_str"

    @hookimpl
    def pagemill_validate(self, page, fields, config):
        return ["a plain string issue"]


class IngestGarbage:
    name = "ingest_garbage"

    @hookimpl(tryfirst=True)
    def pagemill_ingest(self, document, config):
        return [None]


class GoodExtract:
    name = "good_extract"

    @hookimpl
    def pagemill_extract(self, page, ocr, config):
        return (Field("good", 1, 0.9),)  # a tuple is a list too


class CrossRaises:
    name = "cross_raises"

    @hookimpl
    def pagemill_cross_check(self, result, seen, config):
        if result.page == 3:
            raise KeyError("plugin bug in cross_check")
        return []


class BadOutputFields:
    name = "output_str"

    @hookimpl
    def pagemill_output_fields(self, config):
        return "abc"


class Preflight:
    name = "preflight"

    @hookimpl
    def pagemill_preflight(self, config):
        raise CriticalError("install tesseract: apt-get install tesseract-ocr")


class OptionClash:
    name = "option_clash"

    @hookimpl
    def pagemill_add_options(self, parser):
        parser.add_argument("--workers", type=int, default=3)


class OptionSetting:
    name = "option_setting"

    @hookimpl
    def pagemill_add_options(self, parser):
        parser.add_argument("--dpi-max", dest="dpi", type=int, default=3)


def page() -> PageTask:
    return PageTask("t.noop", "0" * 64, 0, 1, kind="noop", has_text_layer=True)


def pipeline_of(*plugins: object) -> tuple[PagePipeline, CallGate]:
    registry = PluginRegistry.for_run(["plugins.noop"], list(plugins), load_entry_points=False)
    gate = CallGate(registry, SlotWriter(BOARD.array, 0))  # as a worker wraps the calls
    return PagePipeline(registry, EngineConfig(options={"noop_ms": 0})), gate


@pytest.mark.parametrize("plugin, hook, message", [
    (ReturnsDict(), "pagemill_extract", "plugin returns_dict: pagemill_extract returned dict, expected a list of Field"),
    (ReturnsField(), "pagemill_extract", "plugin returns_field: pagemill_extract returned Field, expected a list of Field"),
    (IssueStrings(), "pagemill_validate",
     "plugin issue_str: pagemill_validate returned a list holding str, expected a list of Issue"),
])
def test_a_stage_hook_returning_the_wrong_type_fails_the_page_naming_plugin_and_hook(plugin, hook, message) -> None:
    pipeline, gate = pipeline_of(plugin)
    gate.begin(0, 0)
    with pytest.raises(StageError) as raised:
        pipeline.process(page())
    failure = raised.value.failure
    assert failure.error.message == message and failure.error.error_class == "permanent"
    assert (failure.plugin, failure.hook) == (plugin.name, hook)
    # the call counts as that plugin's failure (its circuit breaker's), not as a call that returned
    assert gate.keys[gate.failed] == (plugin.name, hook)
    assert not gate.called & (1 << gate.failed)


def test_an_ingest_returning_garbage_fails_the_document_naming_the_plugin() -> None:
    pipeline, _ = pipeline_of(IngestGarbage())
    with pytest.raises(StageError, match="plugin ingest_garbage: pagemill_ingest returned a list holding NoneType, "
                                         "expected a list of PageTask"):
        pipeline.ingest(Document("t.noop", "0" * 64, 10))


def test_results_of_the_right_type_pass_whatever_the_sequence() -> None:
    pipeline, gate = pipeline_of(GoodExtract())
    gate.begin(0, 0)
    assert "good" in pipeline.process(page()).fields


def test_a_run_with_a_plugin_returning_the_wrong_type_goes_on_and_names_it(tmp_path, noop_archive) -> None:
    archive = noop_archive([3, 2])
    summary = Engine(noop_config(tmp_path / "out"), plugins=[ReturnsDict()]).run(archive)
    assert summary.status == "partial" and summary.pages_failed == 5
    assert summary.errors_by_type == {"PluginResultError": 5}
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert {record["error"]["message"] for record in records} == {
        "plugin returns_dict: pagemill_extract returned dict, expected a list of Field"}


def test_a_parent_hook_that_raises_stops_the_run_naming_plugin_and_hook(tmp_path, noop_archive) -> None:
    archive = noop_archive([5])
    engine = Engine(noop_config(tmp_path / "out", workers="1"), plugins=[CrossRaises()])
    with pytest.raises(PluginError, match=r"^plugin cross_raises: pagemill_cross_check raised KeyError: "
                                          r"'plugin bug in cross_check'$"):
        engine.run(archive)
    assert engine.last_summary.status == "crashed" and engine.last_summary.exit_code == 3
    assert engine.last_summary.message.startswith("plugin cross_raises: pagemill_cross_check raised KeyError")


def test_a_parent_hook_returning_the_wrong_type_is_named_too() -> None:
    registry = PluginRegistry.for_run(objects=[BadOutputFields()], load_entry_points=False)
    with pytest.raises(PluginError, match="plugin output_str: pagemill_output_fields returned str, expected a list of str"):
        registry.hook.pagemill_output_fields(config=EngineConfig())


def test_a_pagemill_error_from_a_parent_hook_passes_unchanged() -> None:
    registry = PluginRegistry.for_run(objects=[Preflight()], load_entry_points=False)
    with pytest.raises(CriticalError, match="^install tesseract"):
        registry.hook.pagemill_preflight(config=EngineConfig())


@pytest.mark.parametrize("plugin, text", [
    (OptionClash(), "plugin option_clash: an option clashes with an option of pagemill or of another plugin "
                    "(argument --workers: conflicting option string: --workers)"),
    (OptionSetting(), "plugin option_setting: option --dpi-max sets 'dpi', a pagemill setting"),
])
def test_an_option_that_clashes_is_a_load_error_naming_the_plugin(tmp_path, plugin, text) -> None:
    path = tmp_path / f"{plugin.name}.py"
    path.write_text(f"from engine import hookimpl\n\n@hookimpl\n"
                    f"def pagemill_add_options(parser):\n    {_option_line(plugin)}\n")
    from engine.cli_options import build_parser

    with pytest.raises(PluginLoadError) as raised:
        build_parser(["run", "--plugin", str(path)])
    assert str(raised.value).startswith(text)
    if isinstance(plugin, OptionSetting):  # the API sees it too
        with pytest.raises(PluginLoadError, match="option_setting"):
            Engine(EngineConfig(load_entry_points=False), plugins=[plugin])


def _option_line(plugin: object) -> str:
    return ('parser.add_argument("--workers", type=int, default=3)' if isinstance(plugin, OptionClash)
            else 'parser.add_argument("--dpi-max", dest="dpi", type=int, default=3)')


def test_the_command_names_the_plugin_and_exits_as_documented(tmp_path, noop_archive) -> None:
    from test_cli import pagemill

    archive = noop_archive([4])
    cross = tmp_path / "cross_raises.py"
    cross.write_text("from engine import hookimpl\n\n@hookimpl\ndef pagemill_cross_check(result, seen, config):\n"
                     "    if result.page == 3:\n        raise KeyError('plugin bug')\n    return []\n")
    done = pagemill("run", str(archive), "--out", str(tmp_path / "out"), "--plugin", "plugins.noop",
                    "--plugin", str(cross), "--workers", "1", "--no-progress")
    assert done.returncode == 3
    assert "plugin cross_raises: pagemill_cross_check raised KeyError: 'plugin bug'" in done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    clash = tmp_path / "option_clash.py"
    clash.write_text("from engine import hookimpl\n\n@hookimpl\ndef pagemill_add_options(parser):\n"
                     "    parser.add_argument('--workers', type=int, default=3)\n")
    done = pagemill("run", str(archive), "--out", str(tmp_path / "out2"), "--plugin", str(clash))
    assert done.returncode == 2 and "plugin option_clash" in done.stderr and "internal error" not in done.stderr
