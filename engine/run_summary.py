"""A run's figures at its end: :class:`engine.records.RunSummary` from a session's counts.

Two kinds of figure, kept apart (report.json's keys are listed in engine.sinks):

- this run's work: the pages it processed (``pages_ok``, ``pages_review``, ``pages_failed``), those
  of its inputs it found done already (``pages_skipped``), their sum (``pages_total``), and the
  errors of the pages it failed (``errors_by_class``, which add up to ``pages_failed``), and the
  documents of its inputs not processed as exact copies of another (``duplicate_documents``);
- the output folder after it (``outputs_*``, ``pages_done_before``): what the outputs hold,
  whichever run did it. These decide the status (``partial``) and the exit code.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from engine.records import RunSummary

if TYPE_CHECKING:
    from engine.runner import RunSession


def summarize(session: RunSession, status: str, totals: dict[str, int] | None = None, message: str = "",
              in_outputs: int | None = None) -> RunSummary:
    """The summary of ``session``: ``totals`` are the pages in the outputs by status and in all
    (``pages``), ``in_outputs`` how many of them this run did (both this run's own pages by default)."""
    scheduler = session.scheduler
    wall = time.perf_counter() - session.started
    snapshot = scheduler.run_counters()
    pages = session.pages_done
    totals = totals if totals is not None else {**session.counts, "pages": pages}
    mine = pages if in_outputs is None else in_outputs
    if not message and scheduler.critical is not None:
        message = scheduler.critical.one_line()
    return RunSummary(
        run_id=session.run_id,
        out_dir=session.config.out_dir,
        status=status,
        pages_total=pages + scheduler.pages_skipped,
        pages_ok=session.counts["ok"],
        pages_review=session.counts["review"],
        pages_failed=session.counts["failed"],
        pages_skipped=scheduler.pages_skipped,
        documents=session.documents,
        wall_seconds=round(wall, 3),
        pages_per_second=round(pages / wall, 3) if wall > 0 else 0.0,
        duplicate_documents=len(scheduler.copies),
        stage_seconds={k: round(v, 3) for k, v in session.stage_seconds.items() if v},
        stage_busy_seconds={k: round(v, 3) for k, v in snapshot.stage_busy_seconds.items() if v},
        errors_by_class=dict(session.errors_by_class),
        errors_by_type=dict(session.errors_by_type),
        peak_workers=scheduler.peak_workers,
        breaker_events=sum(scheduler.breakers.counts().values()),
        breakers=scheduler.breaker_counts(),
        message=message,
        outputs_ok=totals["ok"],
        outputs_review=totals["review"],
        outputs_failed=totals["failed"],
        pages_done_before=max(0, totals["pages"] - mine),
        field_order=tuple(session.field_order),
    )


def jsonable(summary: RunSummary) -> dict[str, Any]:
    """The summary as report.json's run part, with its exit code."""
    data = dataclasses.asdict(summary)
    data["exit_code"] = summary.exit_code
    return data
