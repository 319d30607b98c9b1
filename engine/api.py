"""Engine: the entry point for the CLI and for Python code that embeds pagemill."""

from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable, Iterator, Sequence

from engine import hookimpl
from engine.config import EngineConfig
from engine.db_sink import sink_from_url
from engine.errors import CriticalError, EngineClosedError, PagemillError
from engine.executors import make_pool
from engine.inputs import Inputs, feeds_of, stored_inputs
from engine.jobs import Feeds, Job, JobService
from engine.mainguard import check_entry_point_guarded
from engine.mphost import HostStartMethod, preload_added
from engine.plugin_options import plugin_option_specs_of
from engine.rates import StageRate
from engine.records import Document, PageResult, RunSummary
from engine.registry import PluginRegistry
from engine.run_progress import ProgressPublisher, RunProgress
from engine.runner import RunSession, open_ledger, preflight
from engine.scheduler import Scheduler


class _EngineHooks:
    """The engine's own parent-side plugin: an amended page to ``on_page_amended``, unless the page
    still waits for a process() loop beside jobs (the loop then gets it as amended)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)

    @hookimpl
    def pagemill_page_amended(self, result: PageResult) -> None:
        engine = self._engine()
        if engine is None:
            return
        if engine._jobs is not None and engine._jobs.replace_held(result):
            return
        if engine.on_page_amended is not None:
            engine.on_page_amended(result)


@dataclass
class _Loop:
    """A process() loop: the thread that runs it, and whether it has ended."""

    ended: threading.Event
    thread: threading.Thread | None = None


class Engine:
    """Runs archives through the stage plugins on a pool of worker processes.

    ``Engine(config).run(paths)`` processes everything and returns a :class:`RunSummary`;
    ``Engine(config).process(paths)`` yields each :class:`PageResult` once it is committed.
    Used as a context manager, the worker pool starts once for many calls; leaving the block on
    an exception cancels every job (at once on Ctrl-C). A closed engine refuses new work.

    ``plugins`` are plugin objects (modules, classes, instances) or references as ``--plugin``
    takes them (a ``.py`` path or a module name). ``on_page_done(result)`` is called for each
    page handed on, ``on_page_amended(result)`` for a page handed on before that a check across
    pages changed later (a repeated ticket number): ``result`` replaces the earlier one. Both run
    in the thread that runs the pages: the loop's for process() and run(), the jobs' thread for
    submit() and a process() beside jobs. A callback that raises ends the run; that page was not
    handed on and is done again by the next run.
    """

    def __init__(
        self,
        config: EngineConfig | None = None,
        plugins: Sequence[object] = (),
        *,
        on_page_done: Callable[[PageResult], Any] | None = None,
        on_page_amended: Callable[[PageResult], Any] | None = None,
        on_progress: Callable[[RunProgress], Any] | None = None,
        probe: Any = None,
        **overrides: Any,
    ) -> None:
        refs = tuple(os.fspath(p) for p in plugins if isinstance(p, (str, os.PathLike)))
        objects = [p for p in plugins if not isinstance(p, (str, os.PathLike))]
        loaded = config is None
        if config is None:
            if refs:  # loaded like --plugin: stored with the run, so a resume loads them too
                overrides["plugins"] = tuple(overrides.get("plugins") or ()) + refs
            config = EngineConfig.load(**overrides)
        else:
            if refs:
                overrides["plugins"] = tuple(dict.fromkeys(config.plugins + refs))
            if overrides:
                config = config.replace(**overrides)
        self.registry = PluginRegistry.for_run(config.plugins, objects, config.load_entry_points)
        option_specs = plugin_option_specs_of(self.registry)
        if loaded:  # the plugins' own options too: their defaults, pagemill.toml, PAGEMILL_<OPTION>
            config = EngineConfig.load(plugin_options=option_specs, **overrides)
        else:  # explicit: nothing read from the file or the environment, but the options' defaults
            config = config.with_option_defaults(option_specs)
            config.validate()
        self.config = config
        self.registry.add_parent_plugin(_EngineHooks(self), "pagemill-engine", guarded=False)
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
        self.on_page_amended = on_page_amended
        self.on_progress = on_progress
        self.probe = probe
        self._pool: Any = None
        self._host = HostStartMethod()
        self._session: RunSession | None = None  # the run of the process() loop going on
        self._pending_cancel: bool | None = None  # a cancel before the session existed: immediate?
        self._streams: weakref.WeakKeyDictionary[Generator[PageResult, None, None], _Loop] = (
            weakref.WeakKeyDictionary())
        self._jobs: JobService | None = None
        self._closed = False
        self.last_summary: RunSummary | None = None
        self._progress = ProgressPublisher()

    # ------------------------------------------------------------ the pool
    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
            return
        # the block failed: nothing more is started; Ctrl-C stops pages in flight too. The loops
        # end first, while the run still takes back the pages they did not take.
        immediate = issubclass(exc_type, KeyboardInterrupt)
        self._end_streams()
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
            with preload_added():
                self._pool = make_pool(self.config, self.registry.specs)

    def close(self) -> None:
        """Finish what runs (an open process() loop is cancelled, jobs run to their end), then stop
        the pool and close the sinks. A second close does nothing.

        From another thread than a running process() loop's, close() cancels that loop and waits
        until it has ended (the loop gets the pages committed until then, then stops)."""
        self._close(raise_errors=True)

    @property
    def closed(self) -> bool:
        return self._closed

    def _close(self, raise_errors: bool) -> None:
        if self._closed:
            return
        self._refuse_closing_from_inside()
        self._closed = True
        error: BaseException | None = None
        try:
            error = self._end_streams()
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

    def _refuse_closing_from_inside(self) -> None:
        """close() from a callback of a running loop or of the jobs' thread would wait for itself."""
        me = threading.current_thread()
        jobs_thread = self._jobs._thread if self._jobs is not None else None
        if me is jobs_thread or any(stream.gi_running and loop.thread is me for stream, loop in list(self._streams.items())):
            raise PagemillError("close() called from a callback of a running run: leave the process() loop "
                                "(or let the jobs end) first; cancel() stops the run from a callback")

    def _end_streams(self) -> BaseException | None:
        """End every process() loop so that its run is recorded (cancelled) before the pool stops."""
        error: BaseException | None = None
        for stream, loop in list(self._streams.items()):
            try:
                stream.close()
            except ValueError:  # running in another thread: ask it to stop, and wait until it has
                if self._session is not None:
                    self._session.scheduler.cancel(immediate=True)
                if self._jobs is not None:
                    self._jobs.stop_streams()
                loop.ended.wait()
            except Exception as exc:  # noqa: BLE001 - handed to close()'s caller after the cleanup
                error = error or exc
        return error

    def _close_sinks(self) -> None:
        for sink in self._sinks:
            sink.close()
        self._sinks = []

    def _close_pool(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown()
        self._host.restore()

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
        the rest cleanly: pages not yielded are not recorded and are done by the next run into
        the same output folder. While jobs from :meth:`submit` run, the pages join their run as
        one more job (and leaving the loop cancels that job only); a few pages at most wait for
        the loop there, so a slow loop slows the run rather than filling memory.
        """
        self._check_open()
        feeds, inputs = feeds_of(self.config, paths, priority, documents)
        loop = _Loop(threading.Event())
        stream = self._stream(feeds, inputs, loop)
        self._streams[stream] = loop
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
        feeds, _ = feeds_of(self.config, paths, priority, None)
        if self._jobs is None:
            self._jobs = JobService(lambda: self._new_session({}, foreground=False))
        return self._jobs.submit(feeds, keep_results)

    def cancel(self, immediate: bool = False) -> None:
        """Stop dispatching; pages in flight finish within ``grace`` (at once if ``immediate``).

        A cancel while a process() loop is starting (its plugins' preflight, the pool, the
        ledger), or before it is started, is kept and takes effect as soon as its run exists: the
        run ends at once as cancelled, nothing done. It is dropped when that loop ends."""
        if self._session is not None:
            self._session.scheduler.cancel(immediate)
        elif self._jobs is None or not self._jobs.alive:
            self._pending_cancel = bool(immediate or self._pending_cancel)
        if self._jobs is not None:
            self._jobs.cancel_all(immediate)

    def progress(self) -> RunProgress | None:
        """Where the current run stands (None when no run goes on): the latest snapshot the run's
        thread made, at most PUBLISH_EVERY seconds old. Safe from any thread: it reads nothing
        the run changes."""
        return self._progress.latest(self.session)

    @property
    def session(self) -> RunSession | None:
        if self._session is not None:
            return self._session
        return self._jobs.session if self._jobs is not None and self._jobs.alive else None

    # ------------------------------------------------------------ internals
    def _stream(self, feeds: Feeds, inputs: dict[str, Any], loop: _Loop) -> Generator[PageResult, None, None]:
        loop.thread = threading.current_thread()
        try:
            yield from self._pages(feeds, inputs)
        finally:
            loop.ended.set()

    def _pages(self, feeds: Feeds, inputs: dict[str, Any]) -> Generator[PageResult, None, None]:
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
            if self._pending_cancel is not None:  # cancelled while it started: it ends at once
                session.scheduler.cancel(self._pending_cancel)
            for group_priority, feed in feeds:
                session.scheduler.add_documents(feed, group_priority)
            yield from session.results()
            self._tick(session, force=True)  # the final figures, after the last commit
        finally:
            if session is not None:
                self.last_summary = session.summary
                session.ledger.close()
            self._session = None
            self._pending_cancel = None
            if temporary:
                self._close_pool()
            else:
                self._host.restore()

    def _job_summary(self, job: Job, started: float) -> None:
        """The summary of a process() that ran as a job: its own pages, the outputs' totals."""
        progress = job.progress()
        session = self._jobs.session if self._jobs is not None else None
        wall = time.perf_counter() - started
        status = {"running": "cancelled", "cancelled": "cancelled", "failed": "critical"}.get(
            progress.status, "partial" if progress.pages_failed else "finished")
        outputs = job.outputs or {}
        totals = sum(outputs.get(status_name, 0) for status_name in ("ok", "review", "failed"))
        if status == "finished" and outputs.get("failed"):
            status = "partial"
        self.last_summary = RunSummary(
            run_id=session.run_id if session is not None else 0, out_dir=self.config.out_dir, status=status,
            pages_total=progress.pages_done + progress.pages_skipped, pages_ok=progress.pages_ok,
            pages_review=progress.pages_review, pages_failed=progress.pages_failed,
            pages_skipped=progress.pages_skipped, documents=progress.documents, wall_seconds=round(wall, 3),
            pages_per_second=round(progress.pages_done / wall, 3) if wall > 0 else 0.0,
            message=str(job._error or ""),
            outputs_ok=outputs.get("ok", 0), outputs_review=outputs.get("review", 0),
            outputs_failed=outputs.get("failed", 0), pages_done_before=max(0, totals - progress.pages_done),
            field_order=tuple(session.field_order) if session is not None else (),
        )

    def _new_session(self, inputs: dict[str, Any], foreground: bool) -> RunSession:
        config = self.config
        preflight(config, self.registry)
        self.start()  # before the ledger: an executor that cannot start leaves no run behind
        ledger = open_ledger(config)
        scheduler = Scheduler(config, self._pool, probe=self.probe)
        session = RunSession(config, self.registry, scheduler, ledger, self.on_page_done, self._tick, inputs)
        self._progress.start(session, self._pool)
        if foreground:
            self._session = session
        return session

    def _tick(self, session: RunSession, force: bool = False) -> None:
        """On the run's thread, after each of its steps: a new snapshot every PUBLISH_EVERY
        seconds (and when ``force``d), for progress() and on_progress."""
        progress = self._progress.tick(session, force)
        if progress is not None and self.on_progress is not None:
            self.on_progress(progress)


__all__ = ["Engine", "Job", "RunProgress", "StageRate", "CriticalError", "EngineClosedError", "stored_inputs"]
