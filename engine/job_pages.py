"""Which job a document and its pages belong to, in the one run behind ``Engine.submit``.

The run's scheduler reads every job's documents; :class:`JobPages` notes, on the run's thread,
the job each document was read for, and by that the pages each job knows of (its documents
opened so far, pages done before included), those it skips (done by an earlier run) and whether
its documents are still being read or opened. It sees pages through the two questions the
scheduler asks of the run: ``document_done(document)`` for each document read, and
``is_done(key)`` once for each page of a document opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

from engine.records import Document, PageResult

if TYPE_CHECKING:
    from engine.jobs import Job
    from engine.scheduler import Scheduler


class JobPages:
    """The per-job page figures of one run (see the module docstring)."""

    def __init__(self) -> None:
        self._readers: dict[int, Job] = {}  # by id: the jobs whose documents were read (the run's thread only)
        self._job_of_document: dict[str, Job] = {}  # sha256 -> the job that read it last
        self._opened: set[str] = set()  # sha256 of the documents opened (or failed) in this run
        self._opening: set[str] = set()  # sha256 of documents whose pages are being counted
        self._watching: Scheduler | None = None

    def read_for(self, job: Job, documents: Iterable[Document], scheduler: Scheduler) -> Iterator[Document]:
        """The job's documents as the scheduler reads them (on the run's thread), noted as its."""
        try:
            for document in documents:
                if self._watching is not scheduler:
                    self._watch(scheduler)
                self._job_of_document[document.sha256] = job
                self._readers[job.id] = job
                job._documents += 1
                yield document
        finally:  # read to its end, failed, or dropped (a cancel)
            job._feeds_open -= 1

    def step_done(self) -> None:
        """After each step of the run (the run's thread): the documents opened in it are settled
        now that all their pages are counted, so that a job is never seen done discovering with
        a document's pages half counted."""
        if self._opening:
            opening, self._opening = self._opening, set()
            for sha256 in opening:
                self._settle(sha256)

    def committed(self, job: Job, result: PageResult) -> None:
        """A document that could not be opened is one page known, once its record is committed."""
        if result.key[1] < 0:
            job._known += 1
            self._settle(result.sha256)

    def _settle(self, sha256: str) -> None:
        """A document was opened (or could not be): no job waits for its pages any more."""
        if sha256 in self._opened:
            return
        self._opened.add(sha256)
        for job in self._readers.values():
            job._ingesting.discard(sha256)

    def _watch(self, scheduler: Scheduler) -> None:
        """Answer the scheduler's two questions as the run does, noting the pages by job."""
        is_done, document_done = scheduler.is_done, scheduler.document_done

        def page_done(key: tuple[str, int]) -> bool:  # asked once for each page of a document opened
            done = is_done(key)
            if key[0] not in self._opened:
                self._opening.add(key[0])  # settled by step_done(), once all its pages are counted
            job = self._job_of_document.get(key[0])
            if job is not None:
                job._known += 1
                if done:
                    job._skipped += 1
            return done

        def whole_document_done(document: Document) -> bool:
            before = scheduler.pages_skipped
            done = document_done(document)
            job = self._job_of_document.get(document.sha256)
            if job is not None and done:  # known before skipped: a reader never sees more skipped than known
                job._known += scheduler.pages_skipped - before
                job._skipped += scheduler.pages_skipped - before
                job._documents -= 1
            elif job is not None and document.sha256 not in self._opened and document.sha256 not in self._opening:
                # to be opened (a copy is settled with its original)
                job._ingesting.add(document.sha256)
            return done

        scheduler.is_done, scheduler.document_done = page_done, whole_document_done
        self._watching = scheduler


__all__ = ["JobPages"]
