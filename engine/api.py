"""Engine: the entry point for the CLI and for Python code that embeds pagemill."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from engine.config import EngineConfig
from engine.db_sink import sink_from_url
from engine.discovery import check_inputs, iter_documents
from engine.errors import CriticalError
from engine.executors import make_pool
from engine.jobs import Job, JobService
from engine.progress import ProgressSnapshot
from engine.records import Document, PageResult, RunSummary
from engine.registry import PluginRegistry
from engine.runner import RunSession, open_ledger, preflight
from engine.scheduler import Scheduler

PathLike = str | os.PathLike[str]
Inputs = Iterable[PathLike] | PathLike | Mapping[str, Iterable[PathLike]]


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands: the shared-memory counters plus what the parent knows."""

    counters: ProgressSnapshot
    pages_done: int  # committed in this run, plus pages done by earlier runs
    pages_known: int  # pages of the documents ingested so far
    pages_skipped: int
    workers_busy: int
    workers_target: int
    workers_memory_mb: float


class Engine:
    """Runs archives through the stage plugins on a pool of worker processes.

    ``Engine(config).run(paths)`` processes everything and returns a :class:`RunSummary`;
    ``Engine(config).process(paths)`` yields each :class:`PageResult` once it is committed.
    Used as a context manager, the worker pool starts once for many calls.
    """

    def __init__(
        self,
        config: EngineConfig | None = None,
        plugins: Sequence[object] = (),
        *,
        on_page_done: Callable[[PageResult], Any] | None = None,
        on_progress: Callable[[RunProgress], Any] | None = None,
        probe: Any = None,
        **overrides: Any,
    ) -> None:
        if config is None:
            config = EngineConfig.load(**overrides)
        elif overrides:
            config = config.replace(**overrides)
        self.config = config
        self.registry = PluginRegistry.for_run(config.plugins, plugins, config.load_entry_points)
        self._sinks = [sink_from_url(url) for url in config.sinks]
        for number, sink in enumerate(self._sinks):
            self.registry.add_parent_plugin(sink, f"sink-{number}")
        self.on_page_done = on_page_done
        self.on_progress = on_progress
        self.probe = probe
        self._pool: Any = None
        self._owns_pool = False
        self._session: RunSession | None = None
        self.last_summary: RunSummary | None = None
        self._last_progress = 0.0
        self._jobs: JobService | None = None

    # ------------------------------------------------------------ the pool
    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        if self._pool is None:
            self._pool = make_pool(self.config, self.registry.specs)

    def close(self) -> None:
        jobs, self._jobs = self._jobs, None
        try:
            if jobs is not None:
                jobs.close()
                self.last_summary = self._session.summary if self._session else self.last_summary
        finally:
            self._close_pool()
            self._close_sinks()

    def _close_sinks(self) -> None:
        for sink in self._sinks:
            sink.close()
        self._sinks = []

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ------------------------------------------------------------- running
    def process(
        self,
        paths: Inputs,
        priority: str | None = None,
        documents: Iterable[Document] | None = None,
    ) -> Iterator[PageResult]:
        """Yield each page's result as soon as it is committed; memory stays flat.

        ``paths`` are files and folders (searched recursively), or a mapping from priority
        (``urgent``, ``high``, ``normal``, ``low``) to such paths. Leaving the loop early cancels
        the rest cleanly: pages not finished are not recorded and are done by the next run into
        the same output folder.
        """
        temporary = self._pool is None
        session = self._open_session(paths, priority, documents)
        try:
            yield from session.results()
        finally:
            self.last_summary = session.summary
            self._session = None
            if temporary:
                self._close_pool()

    def run(self, paths: Inputs, priority: str | None = None) -> RunSummary:
        """Process everything and return the summary (outputs written when out_dir is set)."""
        for _ in self.process(paths, priority):
            pass
        assert self.last_summary is not None
        return self.last_summary

    def cancel(self, immediate: bool = False) -> None:
        """Stop dispatching; pages in flight finish within ``grace`` (at once if ``immediate``)."""
        if self._session is not None:
            self._session.scheduler.cancel(immediate)

    def progress(self) -> RunProgress | None:
        """Where the current run stands; the counters are read from shared memory, no locks."""
        session, pool = self._session, self._pool
        if session is None or pool is None:
            return None
        scheduler = session.scheduler
        return RunProgress(
            counters=pool.board.snapshot(),
            pages_done=session.pages_done + scheduler.pages_skipped,
            pages_known=scheduler.pages_known,
            pages_skipped=scheduler.pages_skipped,
            workers_busy=pool.busy_count(),
            workers_target=pool.target,
            workers_memory_mb=round(sum(scheduler.worker_rss_mb.values()), 1),
        )

    @property
    def session(self) -> RunSession | None:
        return self._session

    # ------------------------------------------------------------ internals
    def _open_session(self, paths: Inputs, priority: str | None, documents: Iterable[Document] | None) -> RunSession:
        feeds, inputs = self._feeds(paths, priority, documents)
        session = self._new_session(inputs)
        for group_priority, feed in feeds:
            session.scheduler.add_documents(feed, group_priority)
        return session

    def _feeds(
        self, paths: Inputs, priority: str | None, documents: Iterable[Document] | None
    ) -> tuple[list[tuple[str, Iterable[Document]]], dict[str, list[str]]]:
        """Lazy document feeds, one per priority, and the inputs as stored for ``resume``."""
        config = self.config
        priority = priority or config.priority
        if documents is not None:
            return [(priority, documents)], {}
        groups = [(str(p), v) for p, v in paths.items()] if isinstance(paths, Mapping) else [(priority, paths)]
        exclude = Path(config.out_dir) if config.out_dir else None
        feeds: list[tuple[str, Iterable[Document]]] = []
        inputs: dict[str, list[str]] = {}
        for group_priority, group in groups:
            items = [group] if isinstance(group, (str, os.PathLike)) else list(group)
            if not items:
                continue
            checked = check_inputs(items)
            inputs[group_priority] = [str(Path(i).resolve()) if i != "-" else i for i in checked]
            feeds.append((group_priority, iter_documents(checked, group_priority, exclude)))
        if not feeds:
            check_inputs([])  # raises: no input
        return feeds, inputs

    def _new_session(self, inputs: dict[str, list[str]]) -> RunSession:
        config = self.config
        preflight(config, self.registry)
        ledger = open_ledger(config)
        self.start()
        scheduler = Scheduler(config, self._pool, probe=self.probe)
        session = RunSession(config, self.registry, scheduler, ledger, self.on_page_done, self._tick, inputs)
        self._session = session
        return session

    def submit(self, paths: Inputs, priority: str | None = None, keep_results: bool = False) -> Job:
        """Start processing in the background and return a :class:`Job` at once.

        Jobs submitted to one engine share its pool by priority; each job's pages are committed
        to the same ledger. Outputs are written when the engine closes (leave the ``with`` block).
        ``keep_results`` keeps the job's PageResults in ``job.results_kept``.
        """
        feeds, _ = self._feeds(paths, priority, None)
        documents = (doc for _, feed in feeds for doc in feed)
        if self._jobs is None:
            self._jobs = JobService(lambda: self._new_session({}))
        return self._jobs.submit(documents, priority or self.config.priority, keep_results)

    def _tick(self, session: RunSession) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if now - self._last_progress >= 0.1:
            self._last_progress = now
            progress = self.progress()
            if progress is not None:
                self.on_progress(progress)


__all__ = ["Engine", "Job", "RunProgress", "CriticalError"]
