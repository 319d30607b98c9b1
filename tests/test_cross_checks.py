"""Checks across pages give the same outputs whatever order the pages finish in."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import noop_config

from engine import hookimpl
from engine.api import Engine
from engine.records import PageResult

SAME_TICKET = str(Path(__file__).with_name("same_ticket.py"))


def duplicate_issues(out: Path) -> dict[tuple[str, int], list[str]]:
    found = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        found[(Path(record["document"]).name, record["page"])] = [
            issue["message"] for issue in record["issues"] if issue["code"] == "duplicate_ticket"]
    return found


class Amended:
    name = "amended"

    def __init__(self) -> None:
        self.done: list[tuple[str, int]] = []
        self.amended: list[PageResult] = []

    @hookimpl
    def pagemill_page_done(self, result: PageResult) -> None:
        self.done.append(result.key)

    @hookimpl
    def pagemill_page_amended(self, result: PageResult) -> None:
        self.amended.append(result)


def test_a_repeated_ticket_number_flags_every_page_the_same_way_whatever_finished_first(noop_archive, tmp_path) -> None:
    archive = noop_archive([1, 1, 1])
    a, b, c = sorted(archive.iterdir())
    outcomes = []
    for number, order in enumerate([(a, b, c), (c, b, a)]):
        out = tmp_path / f"out{number}"
        config = noop_config(out, workers="1", plugins=(SAME_TICKET, "plugins.ticket_validate"))
        hooks = Amended()
        groups = {"urgent": [str(order[0])], "high": [str(order[1])], "low": [str(order[2])]}
        finished = [result.key for result in Engine(config, plugins=[hooks]).process(groups)]
        assert len(finished) == 3 and hooks.done == finished
        # pages handed on before a later page repeated their number were amended, once each time
        assert {result.key for result in hooks.amended} <= set(finished[:2])
        assert all(any(i.code == "duplicate_ticket" for i in result.issues) for result in hooks.amended)
        outcomes.append(duplicate_issues(out))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][(a.name, 1)] == [f"ticket number 555 is also on {b} page 1, {c} page 1"]
    assert all(len(messages) == 1 for messages in outcomes[0].values())


def test_the_sqlite_sink_replaces_an_amended_ticket(noop_archive, tmp_path) -> None:
    archive = noop_archive([1, 1])
    database = tmp_path / "tickets.db"
    config = noop_config(tmp_path / "out", workers="1", plugins=(SAME_TICKET, "plugins.ticket_validate"),
                         sinks=(f"sqlite:///{database}",), noop_ms=400)  # the first page is committed alone
    hooks = Amended()
    Engine(config, plugins=[hooks]).run(str(archive))
    assert len(hooks.amended) == 1  # the first page, handed on before the second repeated its number
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT status, issues FROM tickets").fetchall()
    assert len(rows) == 2
    assert all(status == "review" and "duplicate_ticket" in issues for status, issues in rows)
