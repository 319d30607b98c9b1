"""Jobs: several submissions sharing one engine's pool by priority, run in a background thread.

``Engine.submit(paths, priority)`` returns a :class:`Job` at once. The first submission starts a
run that serves every job until the engine closes: one scheduler, one ledger, so a high-priority
job overtakes the queued pages of a low one. A job is done when all its pages are committed.

While that run lives it is the only reader of the pool: ``Engine.process()`` joins it as one more
job whose committed pages are streamed to the caller (:meth:`JobService.stream`).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from loguru import logger

from engine.errors import CriticalError
from engine.records import Document, PageResult

if TYPE_CHECKING:
    from engine.runner import RunSession

Feeds = list[tuple[str, Iterable[Document]]]  # (priority, documents)


@dataclass(frozen=True)
class JobProgress:
    status: str  # "running", "done", "cancelled" or "failed"
    pages_ok: int
    pages_review: int
    pages_failed: int

    @property
    def pages_done(self) -> int:
        return self.pages_ok + self.pages_review + self.pages_failed


@dataclass
class Job:
    """One submission: its progress, its end, and a way to cancel it.

    ``status()`` is ``running`` until every page is committed, then ``done``; ``cancelled`` when
    :meth:`cancel` came first; ``failed`` when the run stopped on a critical error (``result()``
    then raises it).
    """

    id: int
    priority: str
    _service: Any = field(repr=False, default=None)
    _counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "review": 0, "failed": 0})
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _status: str = "running"
    _cancel_asked: bool = False
    _error: BaseException | None = field(default=None, repr=False)
    _listener: Callable[[PageResult | None], Any] | None = field(default=None, repr=False)
    results_kept: list[PageResult] | None = None

    def status(self) -> str:
        return self._status

    def progress(self) -> JobProgress:
        return JobProgress(self._status, self._counts["ok"], self._counts["review"], self._counts["failed"])

    def cancel(self) -> None:
        """Drop the pages not started yet; pages in flight finish and are kept. A finished job
        stays as it ended."""
        if self._done.is_set():
            return
        self._cancel_asked = True
        self._service.cancel(self)

    def result(self, timeout: float | None = None) -> JobProgress:
        """Wait until every page of the job is committed (or the job is cancelled).

        Raises the :class:`CriticalError` that stopped the run when the job failed.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} not finished after {timeout} s")
        if self._error is not None:
            raise self._error
        return self.progress()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def _record(self, result: PageResult) -> None:
        self._counts[result.status] += 1
        if self.results_kept is not None:
            self.results_kept.append(result)
        if self._listener is not None:
            self._listener(result)

    def _end(self, error: BaseException | None = None) -> None:
        if self._done.is_set():
            return
        self._error = error
        self._status = "failed" if error is not None else "cancelled" if self._cancel_asked else "done"
        self._done.set()
        if self._listener is not None:
            self._listener(None)


class JobService:
    """The background run behind ``Engine.submit``."""

    def __init__(self, open_session: Callable[[], RunSession]) -> None:
        self._open_session = open_session
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._next_id = 1
        self._session: RunSession | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None  # what stopped the run, once it stopped
        self.summary: Any = None  # the run's RunSummary, once it stopped
        self._stopped = False
        self._engine_tick: Any = None

    @property
    def session(self) -> RunSession | None:
        return self._session

    @property
    def alive(self) -> bool:
        return self._session is not None and not self._stopped

    def submit(self, feeds: Feeds, keep_results: bool = False,
               listener: Callable[[PageResult | None], Any] | None = None) -> Job:
        with self._lock:
            if self._stopped:
                reason = self.error if self.error is not None else "the engine was closed"
                raise CriticalError(f"no job can start: the background run stopped ({reason})")
            job = Job(self._next_id, feeds[0][0] if feeds else "normal", self, _listener=listener)
            if keep_results:
                job.results_kept = []
            self._next_id += 1
            start = self._session is None
            if start:
                session = self._open_session()
                session.scheduler.keep_alive = True
                session.on_committed = self._committed
                self._engine_tick = session.on_tick
                session.on_tick = self._tick
                self._session = session
            assert self._session is not None
            for priority, documents in feeds:
                self._session.scheduler.add_documents(documents, priority, job=job.id)
            self._jobs[job.id] = job  # after its feeds: never seen idle before it had work
            if start:
                self._thread = threading.Thread(target=self._run, name="pagemill-jobs", daemon=True)
                self._thread.start()
        return job

    def stream(self, feeds: Feeds, on_end: Callable[[Job], Any] | None = None) -> Iterator[PageResult]:
        """A job whose pages are yielded as they are committed; leaving the loop cancels it."""
        pages: queue.SimpleQueue[PageResult | None] = queue.SimpleQueue()
        job = self.submit(feeds, listener=pages.put)
        try:
            while True:
                try:
                    result = pages.get(timeout=0.5)  # a timeout keeps Ctrl-C deliverable
                except queue.Empty:
                    continue
                if result is None:
                    break
                yield result
            if job._error is not None:
                raise job._error
        finally:
            job._listener = None
            job.cancel()
            if on_end is not None:
                on_end(job)

    def cancel(self, job: Job) -> None:
        if self._session is not None:
            self._session.scheduler.cancel_job(job.id)

    def cancel_all(self, immediate: bool = False) -> None:
        """Stop the run: no new pages; pages in flight finish within grace (none if immediate)."""
        for job in list(self._jobs.values()):
            job._cancel_asked = True
        if self._session is not None:
            self._session.scheduler.cancel(immediate)

    def _run(self) -> None:
        session = self._session
        assert session is not None
        error: BaseException | None = None
        try:
            for _ in session.results():
                pass
        except BaseException as exc:  # noqa: BLE001 - handed to the jobs and to close()
            error = exc
        summary = session.summary
        if error is None and summary is not None and summary.status == "critical":
            error = CriticalError(summary.message or "the run stopped on a critical error")
        with self._lock:
            self._stopped = True
            self.error, self.summary = error, summary
        if error is not None:
            logger.error("background jobs stopped: {}", error)
        for job in list(self._jobs.values()):
            job._end(error if not job._cancel_asked else None)
        if self._engine_tick is not None:
            try:
                self._engine_tick(session, True)
            except Exception as exc:  # noqa: BLE001 - a callback's error must not kill the thread silently
                logger.warning("on_progress failed: {}: {}", type(exc).__name__, exc)

    def _committed(self, result: PageResult, job_id: int) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            job._record(result)

    def _tick(self, session: RunSession) -> None:
        ended = False
        for job in list(self._jobs.values()):
            if not job.finished and not session.scheduler.job_pending(job.id) and not session.uncommitted(job.id):
                job._end()
                ended = True
        if self._engine_tick is not None:
            self._engine_tick(session, ended)  # a job's last figures are always reported

    def close(self, raise_errors: bool = True) -> None:
        """Let the jobs finish (or what cancel_all left of them), then stop the run."""
        with self._lock:
            session, thread = self._session, self._thread
            self._stopped = True
        if session is not None and thread is not None:
            session.scheduler.keep_alive = False
            thread.join()
        for job in list(self._jobs.values()):
            job._end()
        error, self.error = self.error, None
        if raise_errors and error is not None and not isinstance(error, CriticalError):
            raise error  # a bug or a callback's exception; a critical stop is in the summary and the jobs
