"""The pagemill command: exit codes, outputs, plugins listing, cancellation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAULTS

PAGEMILL = [sys.executable, "-m", "engine.cli"]


def pagemill(*args: str, timeout: float = 120, env: dict | None = None, python: tuple = (),
             **kwargs) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAGEMILL_")}
    environ.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), **(env or {}))
    command = [sys.executable, *python, *PAGEMILL[1:]]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, env=environ, **kwargs)


def test_no_command_is_usage_error() -> None:
    assert pagemill().returncode == 2


def test_bad_option_value_is_usage_error(tmp_path) -> None:
    done = pagemill("run", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "0:0")
    assert done.returncode == 2
    assert "workers" in done.stderr and "Traceback" not in done.stderr


def test_missing_input_is_usage_error(tmp_path) -> None:
    done = pagemill("run", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "input not found" in done.stderr


def test_broken_plugin_is_one_line_usage_error(tmp_path) -> None:
    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text("raise RuntimeError('boom at import')\n")
    done = pagemill("plugins", "--plugin", str(plugin))
    assert done.returncode == 2
    assert "bad_plugin" in done.stderr and "boom at import" in done.stderr
    assert "Traceback" not in done.stderr


def test_plugins_lists_builtins_with_origin_and_hooks(tmp_path) -> None:
    done = pagemill("plugins", "--plugin", FAULTS)
    assert done.returncode == 0, done.stderr
    for name in ("pdf_ingest", "tesseract_ocr", "template_extract", "ticket_validate", "faults"):
        assert name in done.stdout
    assert "entry point" in done.stdout and "extract" in done.stdout


def test_run_all_done_exit_0_and_outputs(noop_archive, tmp_path) -> None:
    archive = noop_archive([2, 3])
    out = tmp_path / "out"
    done = pagemill("run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--workers", "2", "--no-progress")
    assert done.returncode == 0, done.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert {json.loads(line)["status"] for line in lines} <= {"ok", "review"}
    report = json.loads((out / "report.json").read_text())
    assert report["pages"] == 5 or report.get("pages_total") == 5
    for name in ("results.csv", "review.csv", "ledger.sqlite"):
        assert (out / name).exists()


def test_run_with_a_failed_page_exits_1(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    (archive / "junk.pdf").write_bytes(b"this is not a pdf at all")
    out = tmp_path / "out"
    done = pagemill("run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--no-progress")
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "junk.pdf" in line and "ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sum(r["status"] == "failed" for r in records) == 1
    assert sum(r["status"] != "failed" for r in records) == 2


def test_critical_stop_exits_3(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    done = pagemill("run", str(archive), "--out", "/proc/pagemill-out", "--min-free-disk", "0", "--plugin", "plugins.noop",
                    "--no-progress")
    assert done.returncode == 3, done.stderr  # /proc takes no folder, even from root
    assert "not writable" in done.stderr and "Traceback" not in done.stderr


def test_an_output_folder_under_a_file_is_bad_usage(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    for out in (blocker, blocker / "out"):
        done = pagemill("run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--no-progress")
        assert done.returncode == 2, done.stderr
        assert f"{blocker} is a file, not a folder" in done.stderr and "Traceback" not in done.stderr
    assert blocker.read_text() == "x"


@pytest.mark.slow
def test_sigint_cancels_keeps_finished_pages_and_exits_130(noop_archive, tmp_path) -> None:
    archive = noop_archive([40])
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen(
        [*PAGEMILL, "run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--workers", "2",
         "--no-progress", "--grace", "5", "--noop-ms", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    # noop pages take 200 ms each: interrupt once a few are done
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "ledger.sqlite").exists():
        time.sleep(0.1)
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "pagemill resume" in stderr
    kept = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert 0 < len(kept) < 40
    assert len({r["page"] for r in kept}) == len(kept)
    again = pagemill("resume", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr
    final = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["page"] for r in final) == list(range(1, 41))


def test_paths_on_stdin_with_dash(noop_archive, tmp_path) -> None:
    archive = noop_archive([2, 1])
    out = tmp_path / "out"
    listing = "\n".join(str(p) for p in sorted(archive.iterdir())) + "\n"
    done = pagemill("run", "-", "--out", str(out), "--plugin", "plugins.noop", "--no-progress", input=listing)
    assert done.returncode == 0, done.stderr
    assert (out / "results.jsonl").read_text().count("\n") == 3


def test_every_attempt_is_in_the_audit_trail(noop_archive, tmp_path) -> None:
    import sqlite3

    archive = noop_archive([3])
    out = tmp_path / "out"
    state = tmp_path / "fired"
    done = pagemill("run", str(archive), "--out", str(out), "--plugin", "plugins.noop", "--plugin", FAULTS,
                    "--no-progress", "--config", str(_fault_config(tmp_path, state)))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(out / "ledger.sqlite") as db:
        rows = db.execute("select page_index, attempt, error_class from attempts order by page_index, attempt").fetchall()
    assert rows == [(0, 1, None), (1, 1, "transient"), (1, 2, None), (2, 1, None)]


def _fault_config(tmp_path, state) -> Path:
    path = tmp_path / "pagemill.toml"
    path.write_text(f'retry_base_delay = 0.05\n[options]\nfault_kind = "transient"\nfault_match = "page 2"\n'
                    f'fault_limit = 1\nfault_state = "{state}"\n')
    return path


# ------------------------------------------------------------ plugins, config, errors
FIELD_PLUGIN = """
from engine import hookimpl
from engine.records import Field

@hookimpl
def pagemill_extract(page, ocr, config):
    return [Field("{name}", "x", 1.0, raw="x", type="text")]
"""

OPTION_PLUGIN = """
from loguru import logger
from engine import hookimpl

logger.info("option plugin loading")

@hookimpl
def pagemill_add_options(parser):
    parser.add_argument("--max-gross", type=float, default=80000.0, help="flag loads over this many lb")
"""


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _stored_config(out: Path) -> dict:
    import sqlite3

    with sqlite3.connect(out / "ledger.sqlite") as db:
        return json.loads(db.execute("select config from runs order by id desc limit 1").fetchone()[0])


@pytest.fixture
def in_process(monkeypatch):
    """main() in this process; loguru as it was before, afterwards."""
    from loguru import logger

    from engine.cli import main

    monkeypatch.setattr(sys, "path", list(sys.path))
    yield main
    logger.remove()
    logger.add(sys.stderr)


def test_two_plugin_files_of_one_name_both_run(noop_archive, tmp_path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "plugin.py").write_text(FIELD_PLUGIN.format(name=f"from_{folder}"))
    out = tmp_path / "out"
    done = pagemill("run", str(noop_archive([2])), "--out", str(out), "--plugin", "plugins.noop", "--no-progress",
                    "--plugin", str(tmp_path / "a" / "plugin.py"), "--plugin", str(tmp_path / "b" / "plugin.py"))
    assert done.returncode == 0, done.stderr
    assert all({"from_a", "from_b"} <= set(record["fields"]) for record in _records(out))


@pytest.mark.parametrize("error, code", [(PermissionError(13, "Permission denied", "/srv/x.xlsx"), 3),
                                         (NotADirectoryError(20, "Not a directory", "/srv/file/scans"), 2)])
def test_an_os_error_is_one_line_naming_the_path(in_process, monkeypatch, capsys, tmp_path, error, code) -> None:
    import engine.sample

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(engine.sample, "generate_sample", fail)
    assert in_process(["sample", str(tmp_path / "s")]) == code
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"ERROR   cannot use {error.filename}: {error.strerror}"]


def test_an_unexpected_error_is_one_line_and_its_traceback_only_with_v(in_process, monkeypatch, capsys, tmp_path) -> None:
    import engine.sample

    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.sample, "generate_sample", fail)
    assert in_process(["sample", str(tmp_path / "s")]) == 3
    err = capsys.readouterr().err
    assert err.strip() == "ERROR   internal error: RuntimeError: boom (run with -v for the traceback)"
    assert in_process(["-v", "sample", str(tmp_path / "s")]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "in fail" in err and "RuntimeError: boom" in err


def test_sample_refuses_a_file_and_pages_below_1(in_process, capsys, tmp_path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert in_process(["sample", str(afile), "--pages", "2"]) == 2
    assert in_process(["sample", str(tmp_path / "s"), "--pages", "0"]) == 2
    assert in_process(["sample", str(tmp_path / "s"), "--pages", "-3"]) == 2
    err = capsys.readouterr().err
    assert f"{afile} is a file" in err and "at least 1 page, not 0" in err and "not -3" in err
    assert "Traceback" not in err and not (tmp_path / "s").exists()


def test_a_missing_path_on_stdin_is_a_failed_record_and_a_folder_is_searched(noop_archive, tmp_path) -> None:
    archive = noop_archive([2, 1])
    listing = f"{archive / 'doc000.noop'}\n{tmp_path / 'nothere.pdf'}\n{archive}\n"
    out = tmp_path / "out"
    done = pagemill("run", "-", "--out", str(out), "--plugin", "plugins.noop", "--no-progress", input=listing)
    assert done.returncode == 1, done.stderr
    records = _records(out)
    failed = [r for r in records if r["status"] == "failed"]
    assert [(Path(r["document"]).name, r["page"]) for r in failed] == [("nothere.pdf", 0)]
    assert "No such file" in failed[0]["error"]["message"]
    assert sorted((Path(r["document"]).name, r["page"]) for r in records if r["status"] != "failed") == [
        ("doc000.noop", 1), ("doc000.noop", 2), ("doc001.noop", 1)]
    assert json.loads((out / "report.json").read_text())["status"] == "partial"
    assert "Traceback" not in done.stderr


def test_inputs_without_documents_are_usage_errors(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".DS_Store").write_text("x")
    done = pagemill("run", str(empty), "--out", str(tmp_path / "o"), "--no-progress")
    assert done.returncode == 2 and f"no documents found in {empty}" in done.stderr
    done = pagemill("run", "-", "--out", str(tmp_path / "o"), "--no-progress", input="\n\n")
    assert done.returncode == 2 and "no documents found in - (stdin lists no paths)" in done.stderr


def test_plugins_from_the_environment_are_loaded_with_their_options(noop_archive, tmp_path) -> None:
    (tmp_path / "opt_plugin.py").write_text(OPTION_PLUGIN)
    env = {"PAGEMILL_PLUGINS": f"{tmp_path / 'opt_plugin.py'},plugins.noop"}
    done = pagemill("run", str(noop_archive([1])), "--out", str(tmp_path / "o1"), "--max-gross", "500", "--no-progress",
                    env=env)
    assert done.returncode == 0, done.stderr
    assert _stored_config(tmp_path / "o1")["options"]["max_gross"] == 500
    listed = pagemill("plugins", env=env)
    assert listed.returncode == 0 and "opt_plugin" in listed.stdout and "plugins.noop" in listed.stdout


def test_plugins_from_the_file_are_listed_and_their_options_layered(noop_archive, tmp_path) -> None:
    archive = noop_archive([1])
    (tmp_path / "opt_plugin.py").write_text(OPTION_PLUGIN)
    (tmp_path / "pagemill.toml").write_text('[pagemill]\nplugins = ["opt_plugin.py", "plugins.noop"]\nmax_gross = 123\n')
    done = pagemill("run", str(archive), "--out", str(tmp_path / "o2"), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _stored_config(tmp_path / "o2")["options"]["max_gross"] == 123
    done = pagemill("run", str(archive), "--out", str(tmp_path / "o3"), "--no-progress", cwd=tmp_path,
                    env={"PAGEMILL_MAX_GROSS": "777"})
    assert _stored_config(tmp_path / "o3")["options"]["max_gross"] == 777
    done = pagemill("run", str(archive), "--out", str(tmp_path / "o4"), "--no-progress", "--max-gross", "500",
                    cwd=tmp_path, env={"PAGEMILL_MAX_GROSS": "777"})
    assert _stored_config(tmp_path / "o4")["options"]["max_gross"] == 500
    listed = pagemill("plugins", cwd=tmp_path)
    assert listed.returncode == 0 and "opt_plugin" in listed.stdout and "plugins.noop" in listed.stdout


def test_log_lines_of_loading_plugins_have_our_format_and_obey_quiet(tmp_path) -> None:
    (tmp_path / "opt_plugin.py").write_text(OPTION_PLUGIN)
    done = pagemill("plugins", "--plugin", str(tmp_path / "opt_plugin.py"))
    assert "INFO    option plugin loading" in done.stderr.splitlines()
    quiet = pagemill("-q", "plugins", "--plugin", str(tmp_path / "opt_plugin.py"))
    assert quiet.returncode == 0 and "option plugin loading" not in quiet.stderr


def test_a_plugin_module_of_the_current_folder_is_found(tmp_path) -> None:
    package = tmp_path / "localplugins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "fields.py").write_text(FIELD_PLUGIN.format(name="local"))
    # -P: no current folder on sys.path, as with the installed console script
    done = pagemill("plugins", "--plugin", "localplugins.fields", cwd=tmp_path, python=("-P",))
    assert done.returncode == 0, done.stderr
    assert "localplugins.fields" in done.stdout


def test_a_plugin_calling_sys_exit_at_import_is_named(tmp_path) -> None:
    (tmp_path / "quitter.py").write_text("import sys\nsys.exit(5)\n")
    done = pagemill("plugins", "--plugin", str(tmp_path / "quitter.py"))
    assert done.returncode == 2
    assert "quitter.py" in done.stderr and "sys.exit(5)" in done.stderr


def test_the_summary_is_shown_without_progress_and_hidden_by_quiet(noop_archive, tmp_path) -> None:
    archive = noop_archive([2])
    done = pagemill("run", str(archive), "--out", str(tmp_path / "o"), "--plugin", "plugins.noop", "--no-progress")
    assert done.returncode == 0 and "to review" in done.stderr and "documents" in done.stderr
    quiet = pagemill("run", str(archive), "--out", str(tmp_path / "o"), "--plugin", "plugins.noop", "--no-progress", "-q")
    assert quiet.returncode == 0 and "to review" not in quiet.stderr


def test_priority_and_out_dir_from_the_environment(noop_archive, tmp_path) -> None:
    archive = noop_archive([1])
    env = {"PAGEMILL_PRIORITY": "high", "PAGEMILL_OUT_DIR": str(tmp_path / "envout")}
    done = pagemill("run", str(archive), "--plugin", "plugins.noop", "--no-progress", env=env)
    assert done.returncode == 0, done.stderr
    stored = _stored_config(tmp_path / "envout")
    assert stored["priority"] == "high" and "high" in json.dumps(stored["inputs"])
    assert "normal" not in json.dumps(stored["inputs"])
    missing = pagemill("run", str(archive), "--plugin", "plugins.noop", "--no-progress")
    assert missing.returncode == 2 and "--out" in missing.stderr


def test_resume_never_repeats_fresh_nor_retry_failed(noop_archive, tmp_path) -> None:
    noop_archive([3])  # tmp_path/archive, given relative to tmp_path below
    out = tmp_path / "out"
    for extra in ((), ("--fresh", "--retry-failed")):
        done = pagemill("run", "archive", "--out", str(out), "--plugin", "plugins.noop", "--no-progress", *extra,
                        cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    stored = _stored_config(out)
    assert "fresh" not in stored and "retry_failed" not in stored
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = pagemill("resume", str(out), "--no-progress", cwd=elsewhere)  # inputs relative to the first folder
    assert again.returncode == 0, again.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["pages_skipped"] == 3 and report["pages_ok"] + report["pages_review"] == 0


def test_resume_settings_are_the_stored_ones_plus_the_password_and_the_flags_given(monkeypatch, tmp_path) -> None:
    from engine import cli, cli_options
    from engine.config import EngineConfig

    monkeypatch.chdir(tmp_path)
    for name, value in (("PASSWORD", "s3cret"), ("DPI", "150"), ("FRESH", "1"), ("RETRY_FAILED", "1")):
        monkeypatch.setenv(f"PAGEMILL_{name}", value)
    stored = {**EngineConfig(dpi=200, fresh=True, retry_failed=True, options={"level": 2}).snapshot(), "inputs": {}}
    stored.update(fresh=True, retry_failed=True)  # as a ledger of an earlier version holds them
    argv = ["resume", str(tmp_path / "out"), "--grace", "7"]
    parser, _ = cli_options.build_parser(argv)
    config = cli.run_config(parser.parse_args(argv), stored)
    assert (config.password, config.dpi, config.grace, config.options) == ("s3cret", 200, 7.0, {"level": 2})
    assert not config.fresh and not config.retry_failed
    argv.append("--retry-failed")
    assert cli.run_config(parser.parse_args(argv), stored).retry_failed  # given to this resume: applies once


# ------------------------------------------------------------------ cancelling while the run starts
SLOW_START = """
import pathlib, time
from engine import hookimpl

@hookimpl
def pagemill_preflight(config):
    pathlib.Path({marker!r}).touch()
    time.sleep({seconds})
"""


def _starting_run(noop_archive, tmp_path, seconds: float) -> tuple[subprocess.Popen, Path]:
    archive = noop_archive([5, 5])
    marker = tmp_path / "preflight"
    plugin = tmp_path / "slow_start.py"
    plugin.write_text(SLOW_START.format(marker=str(marker), seconds=seconds))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen([*PAGEMILL, "run", str(archive), "--out", str(tmp_path / "out"), "--plugin",
                                "plugins.noop", "--plugin", str(plugin), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return process, tmp_path / "out"


def test_sigterm_while_the_run_starts_cancels_it_once_started(noop_archive, tmp_path) -> None:
    process, out = _starting_run(noop_archive, tmp_path, seconds=1.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "pagemill resume" in stderr
    assert not (out / "results.jsonl").exists() or (out / "results.jsonl").read_text() == ""
    again = pagemill("resume", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr
    assert len(_records(out)) == 10


def test_a_second_ctrl_c_while_the_run_starts_stops_at_once(noop_archive, tmp_path) -> None:
    process, _ = _starting_run(noop_archive, tmp_path, seconds=600)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)  # not the preflight's 600 s
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
