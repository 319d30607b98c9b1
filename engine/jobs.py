"""Jobs: several submissions sharing one engine's pool by priority, run in a background thread.

``Engine.submit(paths, priority)`` returns a :class:`Job` at once. The first submission starts a
run that serves every job until the engine closes: one scheduler, one ledger, so a high-priority
job overtakes the queued pages of a low one. A job is done when all its pages are committed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.records import PageResult

if TYPE_CHECKING:
    from engine.runner import RunSession


@dataclass(frozen=True)
class JobProgress:
    status: str  # "running", "done" or "cancelled"
    pages_ok: int
    pages_review: int
    pages_failed: int

    @property
    def pages_done(self) -> int:
        return self.pages_ok + self.pages_review + self.pages_failed


@dataclass
class Job:
    """One submission: its progress, its end, and a way to cancel it."""

    id: int
    priority: str
    _service: Any = field(repr=False, default=None)
    _counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "review": 0, "failed": 0})
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _cancelled: bool = False
    results_kept: list[PageResult] | None = None

    def status(self) -> str:
        if self._done.is_set():
            return "cancelled" if self._cancelled else "done"
        return "running"

    def progress(self) -> JobProgress:
        return JobProgress(self.status(), self._counts["ok"], self._counts["review"], self._counts["failed"])

    def cancel(self) -> None:
        """Drop the pages not started yet; pages in flight finish and are kept."""
        self._cancelled = True
        self._service.cancel(self)

    def result(self, timeout: float | None = None) -> JobProgress:
        """Wait until every page of the job is committed (or the job is cancelled)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} not finished after {timeout} s")
        return self.progress()

    def _record(self, result: PageResult) -> None:
        self._counts[result.status] += 1
        if self.results_kept is not None:
            self.results_kept.append(result)


class JobService:
    """The background run behind ``Engine.submit``."""

    def __init__(self, open_session: Any) -> None:
        self._open_session = open_session
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._next_id = 1
        self._session: RunSession | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._engine_tick: Any = None

    def submit(self, documents: Any, priority: str, keep_results: bool = False) -> Job:
        with self._lock:
            job = Job(self._next_id, priority, self)
            if keep_results:
                job.results_kept = []
            self._next_id += 1
            self._jobs[job.id] = job
            if self._session is None:
                self._session = self._open_session()
                self._session.scheduler.keep_alive = True
                self._session.on_committed = self._committed
                self._engine_tick = self._session.on_tick
                self._session.on_tick = self._tick
                self._session.scheduler.add_documents(documents, priority, job=job.id)
                self._thread = threading.Thread(target=self._run, name="pagemill-jobs", daemon=True)
                self._thread.start()
            else:
                self._session.scheduler.add_documents(documents, priority, job=job.id)
        return job

    def cancel(self, job: Job) -> None:
        if self._session is not None:
            self._session.scheduler.cancel_job(job.id)

    def _run(self) -> None:
        assert self._session is not None
        try:
            for _ in self._session.results():
                pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of close()
            self.error = exc
        finally:
            for job in list(self._jobs.values()):
                job._done.set()

    def _committed(self, result: PageResult, job_id: int) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            job._record(result)

    def _tick(self, session: RunSession) -> None:
        if self._engine_tick is not None:
            self._engine_tick(session)
        for job in list(self._jobs.values()):
            if not job._done.is_set() and not session.scheduler.job_pending(job.id) and not session.uncommitted(job.id):
                job._done.set()

    def close(self) -> None:
        with self._lock:
            session, thread = self._session, self._thread
            self._session = self._thread = None
        if session is not None and thread is not None:
            session.scheduler.keep_alive = False
            thread.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
