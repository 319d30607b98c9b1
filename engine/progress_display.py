"""The progress display (parent only): a rich live view on a terminal, else a log line every few
seconds, and the end-of-run table. It reads :class:`engine.progress.ProgressSnapshot` sums; rich
is imported only when a display is made, so workers never load it.

Documents are found and ingested lazily, so the pages known grow during a run. Until every
document is ingested (``set_total(..., final=False)``) the display shows the pages known as a
lower bound, with no percentage and no ETA: "65 of at least 81 pages, still finding documents".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from engine.rates import WINDOW_SECONDS, Rates, RateWindow, StageRate
from engine.records import STAGES, RunSummary

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from engine.progress import ProgressSnapshot


def format_duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '2 h 05 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressDisplay:
    """The parent's view of a run: a rich live view on a terminal, else a loguru line every
    ``log_every`` seconds. ``update`` may be called as often as wanted: it renders at most
    about ten times a second (``min_interval``); rates are over the last ``window`` seconds
    (engine.rates, as in the API's progress snapshot)."""

    min_interval = 0.1
    window = WINDOW_SECONDS

    def __init__(self, total_pages: int | None = None, enabled: bool = True,
                 console: Console | None = None, log_every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console
        self.enabled = enabled
        self.total = total_pages or 0
        self.final = True  # whether ``total`` is every page of the run, not only those found so far
        self.log_every = log_every
        self.live_view = enabled and console.is_terminal
        self.last_line = ""  # the latest progress line, as logged
        self._live: Any = None
        self._rates = RateWindow(self.window)
        self._pending: tuple[ProgressSnapshot, int, int, int, float] | None = None
        self._last_render = -math.inf
        self._clock = clock
        self._last_log = clock()

    def start(self) -> None:
        if not self.live_view or self._live is not None:
            return
        from rich.live import Live

        self._live = Live(console=self.console, auto_refresh=False, transient=False,
                          redirect_stdout=False, redirect_stderr=True)
        self._live.start()

    def stop(self) -> None:
        if self._pending is not None:
            self._render(self._clock())  # the last values, even if rate-limited
        if self._live is not None:
            self._live.stop()
            self._live = None

    def set_total(self, total_pages: int, final: bool = True) -> None:
        """The pages of the run; ``final=False`` while documents are still being found or ingested
        (``total_pages`` is then a lower bound)."""
        self.total = total_pages
        self.final = final

    def update(self, snapshot: ProgressSnapshot, done_pages: int, workers_busy: int,
               workers_target: int, memory_mb: float) -> None:
        if not self.enabled:
            return
        self._pending = (snapshot, done_pages, workers_busy, workers_target, memory_mb)
        now = self._clock()
        if now - self._last_render >= self.min_interval:
            self._render(now)

    # ------------------------------------------------------------------ internals
    def _render(self, now: float) -> None:
        assert self._pending is not None
        snapshot, done, busy, target, memory_mb = self._pending
        self._pending = None
        self._last_render = now
        rates = self._rates.add(now, done, snapshot)
        rate, stages = rates.pages_per_second, list(rates.stages)
        self.last_line = self._line(done, rate, busy, target, memory_mb, stages)
        if self._live is not None:
            self._live.update(self._renderable(done, rate, busy, target, memory_mb, stages), refresh=True)
        elif not self.live_view and now - self._last_log >= self.log_every:
            self._last_log = now
            logger.info("progress: {}", self.last_line)

    def _pages_text(self, done: int, rate: float | None) -> str:
        if not self.final:  # a percentage or an ETA of the pages found so far would mislead
            known = f"of at least {self.total} pages" if self.total else "pages"
            speed = f"{rate:.1f} pages/s" if rate is not None else "– pages/s"
            return f"{done} {known}, still finding documents, {speed}"
        text = f"{done}/{self.total or '?'} pages"
        if self.total:
            text += f" ({100 * min(done, self.total) / self.total:.0f} %)"
        text += ", " + (f"{rate:.1f} pages/s" if rate is not None else "– pages/s")
        eta = Rates(rate).eta_seconds(done, self.total)
        if eta is not None:
            text += f", ETA {format_duration(eta)}"
        return text

    def _line(self, done: int, rate: float | None, busy: int, target: int, memory_mb: float,
              stages: list[StageRate]) -> str:
        line = f"{self._pages_text(done, rate)}, workers {busy}/{target}, {memory_mb:.0f} MB"
        parts = [f"{s.stage} {s.calls_per_second:.1f}/s {100 * s.busy_share:.0f} %" if s.calls_per_second is not None
                 else f"{s.stage} {100 * s.busy_share:.0f} %" for s in stages]
        return line + ("; stages: " + ", ".join(parts) if parts else "")

    def _renderable(self, done: int, rate: float | None, busy: int, target: int, memory_mb: float,
                    stages: list[StageRate]) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        head = Table.grid(padding=(0, 1))
        total = self.total if self.final else None  # a bar of the pages found so far would mislead: it pulses
        head.add_row(ProgressBar(total=total or None, completed=min(done, total or done), width=30),
                     Text(self._pages_text(done, rate)))
        workers = Text(f"workers {busy}/{target} busy, workers' memory {memory_mb:.0f} MB", style="dim")
        if not stages:
            return Group(head, workers)
        table = Table(box=None, padding=(0, 2), show_edge=False)
        for name in ("stage", "calls/s", "busy share", "running", "failed"):
            table.add_column(name, justify="left" if name == "stage" else "right")
        for s in stages:
            table.add_row(s.stage, "–" if s.calls_per_second is None else f"{s.calls_per_second:.1f}",
                          f"{100 * s.busy_share:.0f} %", str(s.running), str(s.failed) if s.failed else "")
        return Group(head, workers, table)

    # ------------------------------------------------------------------ the end
    def render_summary(self, summary: RunSummary) -> Table:
        """The end-of-run table: pages by outcome, speed, workers, stages and errors."""
        from rich.table import Table

        table = Table(title=f"pagemill run {summary.run_id}: {summary.status}", show_header=False,
                      title_justify="left")
        table.add_column("what")
        table.add_column("value", justify="right")
        wall = summary.wall_seconds
        stage_seconds = summary.stage_busy_seconds or summary.stage_seconds  # busy time when counted
        all_stages = sum(stage_seconds.values()) or 1.0
        sections: list[list[tuple[str, object]]] = [
            [("documents", summary.documents), ("pages", summary.pages_total), ("  ok", summary.pages_ok),
             ("  to review", summary.pages_review), ("  failed", summary.pages_failed),
             ("  done in an earlier run", summary.pages_skipped),
             *([("exact copies, not processed", summary.duplicate_documents)] if summary.duplicate_documents else []),
             ("wall time", format_duration(wall) if wall >= 60 else f"{wall:.1f} s"),
             ("pages/s", f"{summary.pages_per_second:.2f}"), ("peak workers", summary.peak_workers)]
            + ([("circuit breaker events", summary.breaker_events)] if summary.breaker_events else []),
            outputs_rows(summary) if outputs_differ(summary) else [],
            [(f"stage {stage}", f"{seconds:.1f} s ({100 * seconds / all_stages:.0f} %)")
             for stage in STAGES if (seconds := stage_seconds.get(stage, 0.0))],
            [(f"errors: {name}", count) for name, count in summary.errors_by_class.items()]
            + [(f"  {name}", count) for name, count in summary.errors_by_type.items()],
            [("message", summary.message)] if summary.message else [],
        ]
        for index, rows in enumerate(section for section in sections if section):
            if index:
                table.add_section()
            for name, value in rows:
                table.add_row(name, str(value))
        return table

    def print_summary(self, summary: RunSummary) -> None:
        if self.enabled:
            self.console.print(self.render_summary(summary))


def outputs_differ(summary: RunSummary) -> bool:
    """Whether the output folder holds other pages than those this run did."""
    return ((summary.outputs_ok, summary.outputs_review, summary.outputs_failed)
            != (summary.pages_ok, summary.pages_review, summary.pages_failed))


def outputs_rows(summary: RunSummary) -> list[tuple[str, object]]:
    """The output folder's pages by status, saying which failures earlier runs left, since they
    make the run partial: '  failed  1 (from an earlier run)'."""
    failed, earlier = summary.outputs_failed, max(0, summary.outputs_failed - summary.pages_failed)
    failed_text = str(failed)
    if earlier:
        failed_text += " (from an earlier run)" if earlier == failed else f" ({earlier} from an earlier run)"
    return [("in the outputs", summary.outputs_ok + summary.outputs_review + failed),
            ("  ok", summary.outputs_ok), ("  to review", summary.outputs_review), ("  failed", failed_text)]


__all__ = ["ProgressDisplay", "format_duration", "outputs_differ", "outputs_rows"]
