"""Jobs: several submissions sharing one engine's pool by priority, run in a background thread.

``Engine.submit(paths, priority)`` returns a :class:`Job` at once. The first submission starts a
run that serves every job until the engine closes: one scheduler, one ledger, so a high-priority
job overtakes the queued pages of a low one. A job is done when all its pages are committed.

While that run lives it is the only reader of the pool: ``Engine.process()`` joins it as one more
job whose committed pages reach the loop through a small :class:`engine.handover.Handover`
(:meth:`JobService.stream`). As for a process() of its own, a page reaches the loop once across
runs: the pages committed but not taken when the loop leaves are taken back out of the ledger.

The run's thread alone uses the session and its ledger; other threads ask it (``_ask``) and it
answers at its next tick, or once the run is over with a ledger connection of its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from loguru import logger

from engine.errors import CriticalError, LedgerError
from engine.handover import Handover, WaitingThreads
from engine.job_pages import JobPages
from engine.ledger import Ledger
from engine.records import Document, PageResult

if TYPE_CHECKING:
    from engine.runner import RunSession

Feeds = list[tuple[str, Iterable[Document]]]  # (priority, documents)


@dataclass(frozen=True)
class JobProgress:
    """Where a job stands. ``pages_known`` counts the pages of its documents opened so far (those
    done before included, a document that cannot be opened as one); while ``discovering`` its
    documents are still being read or opened, and ``pages_known`` may grow."""

    status: str  # "running", "done", "cancelled" or "failed"
    pages_ok: int
    pages_review: int
    pages_failed: int
    pages_skipped: int = 0  # done before, not redone
    documents: int = 0  # read for this job (not those done before)
    pages_known: int = 0
    discovering: bool = False

    @property
    def pages_done(self) -> int:
        return self.pages_ok + self.pages_review + self.pages_failed

    @property
    def fraction(self) -> float | None:
        """Pages done (or done before) of the pages known, 0..1; None while discovering."""
        if self.discovering or not self.pages_known:
            return None
        return min(1.0, (self.pages_done + self.pages_skipped) / self.pages_known)


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
    _handover: Handover | None = field(default=None, repr=False)
    _skipped: int = 0
    _documents: int = 0
    _known: int = 0  # pages of its documents opened so far, done before or not
    _feeds_open: int = 0  # of its inputs, those still being read
    _ingesting: set[str] = field(default_factory=set)  # sha256 of its documents read, not yet opened
    _taken_back: int = 0  # pages its loop left behind, taken back as they came
    outputs: dict[str, int] | None = field(default=None, repr=False)  # the ledger's totals when it ended
    results_kept: list[PageResult] | None = None

    def status(self) -> str:
        return self._status

    def progress(self) -> JobProgress:
        """Its figures now (from any thread: the counts are read before the pages known, which
        never fall behind them)."""
        ok, review, failed, skipped = self._counts["ok"], self._counts["review"], self._counts["failed"], self._skipped
        status = self._status
        discovering = status == "running" and (self._feeds_open > 0 or len(self._ingesting) > 0)
        return JobProgress(status, ok, review, failed, skipped, self._documents, self._known, discovering)

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
        with self._service.waiting.waiting():  # a process() loop of this thread is not waited for meanwhile
            finished = self._done.wait(timeout)
        if not finished:
            raise TimeoutError(f"job {self.id} not finished after {timeout} s")
        if self._error is not None:
            raise self._error
        return self.progress()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def _record(self, result: PageResult, change: int = 1) -> None:
        self._counts[result.status] += change
        if self.results_kept is not None and change > 0:
            self.results_kept.append(result)

    def _end(self, error: BaseException | None = None) -> None:
        if self._done.is_set():
            return
        self._error = error
        self._status = "failed" if error is not None else "cancelled" if self._cancel_asked else "done"
        self._done.set()
        if self._handover is not None:
            self._handover.end()


@dataclass
class _Request:
    """Work for the run's thread: ``action(session)``, then ``done`` is set."""

    action: Callable[[RunSession | None], Any]
    done: threading.Event = field(default_factory=threading.Event)


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
        self._over = False  # the run's ledger is closed: requests are served by the asking thread
        self._requests: list[_Request] = []
        self._engine_tick: Any = None
        self._pages = JobPages()  # pages known and skipped, by job
        self.waiting = WaitingThreads()

    @property
    def session(self) -> RunSession | None:
        return self._session

    @property
    def alive(self) -> bool:
        return self._session is not None and not self._stopped

    @property
    def handovers(self) -> list[Handover]:
        return [job._handover for job in list(self._jobs.values()) if job._handover is not None]

    def submit(self, feeds: Feeds, keep_results: bool = False, handover: Handover | None = None) -> Job:
        with self._lock:
            if self._stopped:
                reason = self.error if self.error is not None else "the engine was closed"
                raise CriticalError(f"no job can start: the background run stopped ({reason})")
            job = Job(self._next_id, feeds[0][0] if feeds else "normal", self, _handover=handover)
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
            job._feeds_open = len(feeds)
            for priority, documents in feeds:
                scheduler = self._session.scheduler
                scheduler.add_documents(self._pages.read_for(job, documents, scheduler), priority, job=job.id)
            self._jobs[job.id] = job  # after its feeds: never seen idle before it had work
            if start:
                self._thread = threading.Thread(target=self._run, name="pagemill-jobs", daemon=True)
                self._thread.start()
        return job

    def stream(self, feeds: Feeds, on_end: Callable[[Job], Any] | None = None) -> Iterator[PageResult]:
        """A job whose pages are yielded as they are committed; leaving the loop cancels it, and
        the pages committed but not yielded are taken back (the next run redoes them)."""
        handover = Handover(self.waiting)
        job = self.submit(feeds, handover=handover)
        try:
            while True:
                result = handover.get()
                if result is None:
                    break
                yield result
            if job._error is not None and not handover.stop_asked:
                raise job._error
        finally:
            left = handover.leave()
            job.cancel()
            self._ask(lambda session: self._wind_up(session, job, left))
            if on_end is not None:
                on_end(job)

    def stop_streams(self) -> None:
        """Ask every process() loop joined to the jobs to end at its next page (another thread)."""
        for handover in self.handovers:
            handover.stop()

    def replace_held(self, result: PageResult) -> bool:
        """An amended page still held for a loop is replaced there; True when one was."""
        return any(handover.replace(result) for handover in self.handovers)

    def cancel(self, job: Job) -> None:
        if self._session is not None:
            self._session.scheduler.cancel_job(job.id)

    def cancel_all(self, immediate: bool = False) -> None:
        """Stop the run: no new pages; pages in flight finish within grace (none if immediate)."""
        for job in list(self._jobs.values()):
            job._cancel_asked = True
        if self._session is not None:
            self._session.scheduler.cancel(immediate)

    # ------------------------------------------------------------ the run's thread
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
        for job in list(self._jobs.values()):
            if job.outputs is None and summary is not None:
                job.outputs = {"ok": summary.outputs_ok, "review": summary.outputs_review,
                               "failed": summary.outputs_failed}
        with self._lock:
            self._stopped = self._over = True
            self.error, self.summary = error, summary
            requests, self._requests = self._requests, []
        self._serve(requests, None)
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
        session = self._session
        if session is not None and (result.status != "failed" or not session.config.retry_failed):
            session.done_before.add(result.key)  # submitted again in this run: skipped, not redone
        job = self._jobs.get(job_id)
        if job is not None:
            self._pages.committed(job, result)
            job._record(result)
            if job._handover is not None and not job._handover.put(result) and session is not None:
                job._taken_back += self._take_back(session, job, [result])  # its loop left before taking it
        self._serve_waiting()

    def _tick(self, session: RunSession) -> None:
        self._pages.step_done()
        self._serve_waiting()
        ended = False
        for job in list(self._jobs.values()):
            if not job.finished and not session.scheduler.job_pending(job.id) and not session.uncommitted(job.id):
                job.outputs = session.ledger.counts()
                job._end()
                ended = True
        if self._engine_tick is not None:
            self._engine_tick(session, ended)  # a job's last figures are always reported

    def _serve_waiting(self) -> None:
        if self._requests:
            with self._lock:
                requests, self._requests = self._requests, []
            self._serve(requests, self._session)

    def _serve(self, requests: list[_Request], session: RunSession | None) -> None:
        for request in requests:
            try:
                request.action(session)
            finally:
                request.done.set()

    def _ask(self, action: Callable[[RunSession | None], Any]) -> None:
        """Have the run's thread do ``action(session)`` and wait for it; once the run is over (its
        ledger closed), do ``action(None)`` here."""
        if threading.current_thread() is self._thread:  # asked from a callback on the run's thread
            action(None if self._over else self._session)
            return
        with self._lock:
            over = self._over or self._thread is None or not self._thread.is_alive()
            request = _Request(action)
            if not over:
                self._requests.append(request)
        if over:
            action(None)
            return
        with self.waiting.waiting():  # the run's thread must not wait on this thread's loops meanwhile
            request.done.wait()

    def _wind_up(self, session: RunSession | None, job: Job, left: list[PageResult]) -> None:
        """A loop has ended: the pages it left are taken back, and its job notes the outputs' totals."""
        taken = self._take_back(session, job, left) if left else 0
        taken += job._taken_back
        if taken:
            logger.info("{} finished pages were not handed on; the next run redoes them", taken)
        if session is not None:
            job.outputs = session.ledger.counts()
        elif job.outputs is not None:
            for result in left:
                job.outputs[result.status] -= 1

    def _take_back(self, session: RunSession | None, job: Job, results: list[PageResult]) -> int:
        """Pages committed for a loop that never took them: out of the ledger, out of the counts.
        Returns how many were taken back."""
        keys = [result.key for result in results]
        run = self._session
        assert run is not None
        try:
            if session is not None:
                taken = session.ledger.forget(session.run_id, keys)
            elif run.ledger.path is not None:  # the run is over: a connection of our own
                ledger = Ledger(run.ledger.path)
                try:
                    taken = ledger.forget(run.run_id, keys)
                finally:
                    ledger.close()
            else:
                return 0  # an in-memory ledger: no next run to redo them
        except LedgerError as exc:
            logger.warning("{} finished pages not handed on could not be taken back: {}", len(keys), exc)
            return 0
        for result in results:
            job._record(result, -1)
            if session is not None:
                session.counts[result.status] -= 1
                session.done_before.discard(result.key)
        return taken

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
