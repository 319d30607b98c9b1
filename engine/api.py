"""Engine: the entry point for the CLI and for Python code that embeds pagemill."""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, Iterator, Mapping, Sequence

from engine.config import EngineConfig
from engine.db_sink import sink_from_url
from engine.discovery import check_inputs, iter_documents
from engine.errors import ConfigError, CriticalError, EngineClosedError, PagemillError
from engine.executors import make_pool
from engine.jobs import Feeds, Job, JobService
from engine.mainguard import check_entry_point_guarded
from engine.plugin_options import plugin_option_specs_of
from engine.progress import ProgressSnapshot
from engine.records import PRIORITY_RANKS, Document, PageResult, RunSummary
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


def stored_inputs(snapshot: Mapping[str, Any]) -> dict[str, list[str]]:
    """The inputs of a stored run (``Ledger.last_config()``) as ``{priority: [path, ...]}``.

    Paths come back as the user gave them when the working directory is the one they were given
    in, else relative to the current one, else absolute; so a resumed run names every document
    as the first run did. Snapshots of older versions (absolute paths only) are read too.
    """
    stored = snapshot.get("inputs") or {}
    if isinstance(stored.get("inputs"), Mapping):
        cwd, groups = stored.get("cwd"), stored["inputs"]
    else:
        cwd, groups = None, stored
    here = os.getcwd()
    return {str(priority): [_from_cwd(str(p), cwd, here) for p in paths] for priority, paths in groups.items() if paths}


def _from_cwd(path: str, cwd: str | None, here: str) -> str:
    if path == "-" or not cwd or cwd == here or os.path.isabs(path):
        return path
    absolute = os.path.normpath(os.path.join(cwd, path))
    try:
        return os.path.relpath(absolute, here)
    except ValueError:  # another drive
        return absolute


class Engine:
    """Runs archives through the stage plugins on a pool of worker processes.

    ``Engine(config).run(paths)`` processes everything and returns a :class:`RunSummary`;
    ``Engine(config).process(paths)`` yields each :class:`PageResult` once it is committed.
    Used as a context manager, the worker pool starts once for many calls; leaving the block on
    an exception cancels every job (at once on Ctrl-C). A closed engine refuses new work.
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
        loaded = config is None
        if config is None:
            config = EngineConfig.load(**overrides)
        elif overrides:
            config = config.replace(**overrides)
        self.registry = PluginRegistry.for_run(config.plugins, plugins, config.load_entry_points)
        if loaded:  # the plugins' own options too: their defaults, pagemill.toml, PAGEMILL_<OPTION>
            config = EngineConfig.load(plugin_options=plugin_option_specs_of(self.registry), **overrides)
        self.config = config
        self._sinks: list[Any] = []
        try:
            for url in config.sinks:
                self._sinks.append(sink_from_url(url))
        except Exception:
            self._close_sinks()
            raise
        for number, sink in enumerate(self._sinks):
            self.registry.add_parent_plugin(sink, f"sink-{number}")
        self.on_page_done = on_page_done
        self.on_progress = on_progress
        self.probe = probe
        self._pool: Any = None
        self._session: RunSession | None = None  # the run of the process() loop going on
        self._streams: weakref.WeakSet[Generator[PageResult, None, None]] = weakref.WeakSet()
        self._jobs: JobService | None = None
        self._closed = False
        self.last_summary: RunSummary | None = None
        self._last_progress = 0.0

    # ------------------------------------------------------------ the pool
    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
            return
        # the block failed: nothing more is started; Ctrl-C stops pages in flight too
        immediate = issubclass(exc_type, KeyboardInterrupt)
        if self._jobs is not None:
            self._jobs.cancel_all(immediate)
        if self._session is not None:
            self._session.scheduler.cancel(immediate)
        self._close(raise_errors=False)

    def start(self) -> None:
        self._check_open()
        if self._pool is None:
            if self.config.executor == "dask-local" or (self.config.executor == "local" and self.config.mp_context != "fork"):
                check_entry_point_guarded()
            self._pool = make_pool(self.config, self.registry.specs)

    def close(self) -> None:
        """Finish what runs (an open process() loop is cancelled, jobs run to their end), then stop
        the pool and close the sinks. A second close does nothing."""
        self._close(raise_errors=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def _close(self, raise_errors: bool) -> None:
        if self._closed:
            return
        self._closed = True
        error: BaseException | None = None
        try:
            for stream in list(self._streams):
                error = error or self._close_stream(stream)
            jobs, self._jobs = self._jobs, None
            if jobs is not None:
                try:
                    jobs.close(raise_errors)
                finally:
                    self.last_summary = jobs.summary or self.last_summary
        finally:
            self._close_pool()
            self._close_sinks()
        if error is not None and raise_errors:
            raise error

    def _close_stream(self, stream: Generator[PageResult, None, None]) -> BaseException | None:
        """End a paused process() loop so that its run is recorded (cancelled) before the pool stops."""
        try:
            stream.close()
        except ValueError:  # running in another thread: stop it, it ends its run itself
            if self._session is not None:
                self._session.scheduler.cancel(immediate=True)
        except Exception as exc:  # noqa: BLE001 - handed to close()'s caller after the cleanup
            return exc
        return None

    def _close_sinks(self) -> None:
        for sink in self._sinks:
            sink.close()
        self._sinks = []

    def _close_pool(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError("this Engine is closed: create a new one (or do the work inside its with block)")

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
        the same output folder. While jobs from :meth:`submit` run, the pages join their run as
        one more job (and leaving the loop cancels that job only).
        """
        self._check_open()
        feeds, inputs = self._feeds(paths, priority, documents)
        stream = self._stream(feeds, inputs)
        self._streams.add(stream)
        return stream

    def run(self, paths: Inputs, priority: str | None = None) -> RunSummary:
        """Process everything and return the summary (outputs written when out_dir is set)."""
        for _ in self.process(paths, priority):
            pass
        assert self.last_summary is not None
        return self.last_summary

    def submit(self, paths: Inputs, priority: str | None = None, keep_results: bool = False) -> Job:
        """Start processing in the background and return a :class:`Job` at once.

        Jobs submitted to one engine share its pool by priority; each job's pages are committed
        to the same ledger. Outputs are written when the engine closes (leave the ``with`` block).
        ``keep_results`` keeps the job's PageResults in ``job.results_kept``.
        """
        self._check_open()
        if self._session is not None:
            raise PagemillError("submit() while a process() loop of this engine runs: finish that loop first, "
                                "or submit both as jobs")
        feeds, _ = self._feeds(paths, priority, None)
        if self._jobs is None:
            self._jobs = JobService(lambda: self._new_session({}, foreground=False))
        return self._jobs.submit(feeds, keep_results)

    def cancel(self, immediate: bool = False) -> None:
        """Stop dispatching; pages in flight finish within ``grace`` (at once if ``immediate``)."""
        if self._session is not None:
            self._session.scheduler.cancel(immediate)
        if self._jobs is not None:
            self._jobs.cancel_all(immediate)

    def progress(self) -> RunProgress | None:
        """Where the current run stands; the counters are read from shared memory, no locks."""
        session = self.session
        return self._progress_of(session) if session is not None else None

    @property
    def session(self) -> RunSession | None:
        if self._session is not None:
            return self._session
        return self._jobs.session if self._jobs is not None and self._jobs.alive else None

    # ------------------------------------------------------------ internals
    def _stream(self, feeds: Feeds, inputs: dict[str, Any]) -> Generator[PageResult, None, None]:
        if self._jobs is not None and self._jobs.alive:
            # one reader of the pool at a time: join the background run as a job
            started = time.perf_counter()
            yield from self._jobs.stream(feeds, lambda job: self._job_summary(job, started))
            return
        if self._session is not None:
            raise PagemillError("another process() loop of this engine is running: finish or close it first")
        temporary = self._pool is None
        session: RunSession | None = None
        try:
            session = self._new_session(inputs, foreground=True)
            for group_priority, feed in feeds:
                session.scheduler.add_documents(feed, group_priority)
            yield from session.results()
            self._tick(session, force=True)  # the final figures, after the last commit
        finally:
            if session is not None:
                self.last_summary = session.summary
                session.ledger.close()
            self._session = None
            if temporary:
                self._close_pool()

    def _job_summary(self, job: Job, started: float) -> None:
        """The summary of a process() that ran as a job: its own pages only."""
        progress = job.progress()
        session = self._jobs.session if self._jobs is not None else None
        wall = time.perf_counter() - started
        status = {"running": "cancelled", "cancelled": "cancelled", "failed": "critical"}.get(
            progress.status, "partial" if progress.pages_failed else "finished")
        self.last_summary = RunSummary(
            run_id=session.run_id if session is not None else 0, out_dir=self.config.out_dir, status=status,
            pages_total=progress.pages_done, pages_ok=progress.pages_ok, pages_review=progress.pages_review,
            pages_failed=progress.pages_failed, pages_skipped=0, documents=0, wall_seconds=round(wall, 3),
            pages_per_second=round(progress.pages_done / wall, 3) if wall > 0 else 0.0,
            message=str(job._error or ""),
        )

    def _priority(self, priority: object) -> str:
        name = self.config.priority if priority is None else str(priority).strip().lower()
        if name not in PRIORITY_RANKS:
            raise ConfigError(f"unknown priority {priority!r}: use one of {', '.join(PRIORITY_RANKS)}")
        return name

    def _feeds(self, paths: Inputs, priority: str | None, documents: Iterable[Document] | None) -> tuple[Feeds, dict[str, Any]]:
        """Lazy document feeds, one per priority, and the inputs as stored for ``resume``: as given,
        with the folder they are relative to (read back with :func:`stored_inputs`)."""
        if documents is not None:
            return [(self._priority(priority), documents)], {}
        if isinstance(paths, Mapping):
            groups = [(self._priority(p), v) for p, v in paths.items()]
        else:
            groups = [(self._priority(priority), paths)]
        exclude = Path(self.config.out_dir) if self.config.out_dir else None
        feeds: Feeds = []
        given: dict[str, list[str]] = {}
        for group_priority, group in groups:
            items = [group] if isinstance(group, (str, os.PathLike)) else list(group)
            if not items:
                continue
            checked = check_inputs(items)
            given.setdefault(group_priority, []).extend(checked)
            feeds.append((group_priority, iter_documents(checked, group_priority, exclude)))
        if not feeds:
            check_inputs([])  # raises: no input
        return feeds, {"cwd": os.getcwd(), "inputs": given}

    def _new_session(self, inputs: dict[str, Any], foreground: bool) -> RunSession:
        config = self.config
        preflight(config, self.registry)
        self.start()  # before the ledger: an executor that cannot start leaves no run behind
        ledger = open_ledger(config)
        scheduler = Scheduler(config, self._pool, probe=self.probe)
        session = RunSession(config, self.registry, scheduler, ledger, self.on_page_done, self._tick, inputs)
        if foreground:
            self._session = session
        return session

    def _progress_of(self, session: RunSession) -> RunProgress:
        scheduler = session.scheduler
        pool = scheduler.pool
        return RunProgress(
            counters=session.scheduler.run_counters(),
            pages_done=session.pages_done + scheduler.pages_skipped,
            pages_known=scheduler.pages_known,
            pages_skipped=scheduler.pages_skipped,
            workers_busy=pool.busy_count(),
            workers_target=pool.target,
            workers_memory_mb=round(sum(scheduler.worker_rss_mb.values()), 1),
        )

    def _tick(self, session: RunSession, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_progress >= 0.1:
            self._last_progress = now
            self.on_progress(self._progress_of(session))


__all__ = ["Engine", "Job", "RunProgress", "CriticalError", "EngineClosedError", "stored_inputs"]
