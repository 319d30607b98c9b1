"""One run: discovery → scheduler → ledger → outputs, with the parent-side hooks.

A page counts as done only once the ledger has committed it, and reaches the caller across the
runs into one output folder: ``RunSession.results()`` commits pages in batches, then hands them on
one by one — ``pagemill_page_done``, the callback, then the yield — and marks them delivered in the
ledger. When the run ends early (the consumer leaves the loop, or something raises), pages
committed but not yet handed on are taken back out of the ledger, so the next run redoes and
delivers them. A run killed outright (kill -9) cannot take them back: the next run hands on the
pages it finds committed and not delivered before any other (at least once; the SQLite sink's
upsert keeps one row per page). At the end the output files are written from the ledger.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator

from loguru import logger

from engine.config import EngineConfig
from engine.config_paths import with_absolute_paths
from engine.discovery import sha256_of
from engine.errors import CriticalError, LedgerError, PagemillError
from engine.ledger import Ledger
from engine.pipeline import merge_fields, status_of
from engine.records import STAGES, Document, Issue, PageResult, RunSummary
from engine.registry import PluginRegistry
from engine.run_setup import open_ledger, output_fields, preflight
from engine.scheduler import (
    AttemptFailed,
    DocumentFailed,
    DocumentOpened,
    PageFinished,
    Scheduler,
)
from engine.run_summary import jsonable as _jsonable
from engine.run_summary import summarize
from engine.seen import SeenValues
from engine.sinks import write_outputs


class RunSession:
    """Drives one Scheduler run and commits its outcomes."""

    def __init__(
        self,
        config: EngineConfig,
        registry: PluginRegistry,
        scheduler: Scheduler,
        ledger: Ledger,
        on_page_done: Callable[[PageResult], Any] | None = None,
        on_tick: Callable[[RunSession], Any] | None = None,
        inputs: dict[str, list[str]] | None = None,
    ) -> None:
        self.inputs = inputs or {}
        self.config = config
        self.registry = registry
        self.scheduler = scheduler
        self.ledger = ledger
        self.on_page_done = on_page_done
        self.on_tick = on_tick
        self.seen = SeenValues()
        self.counts = {"ok": 0, "review": 0, "failed": 0}  # pages this run handed on
        self.errors_by_class: dict[str, int] = {}
        self.errors_by_type: dict[str, int] = {}
        self.stage_seconds = {stage: 0.0 for stage in STAGES}
        self.documents = 0
        self.started = time.perf_counter()
        self.run_id = 0
        self.summary: RunSummary | None = None
        self.done_before: set[tuple[str, int]] = set()
        self._skips_counted: dict[str, str] = {}  # sha256 -> the path its skipped pages were counted for
        self._ingesting: set[str] = set()  # sha256 of documents handed to ingest, not yet opened or failed
        self._document_pages: dict[str, int] = {}
        self._document_paths: dict[str, str] = {}
        self.on_committed: Callable[[PageResult, int], Any] | None = None
        self._job_of: dict[tuple[str, int], int] = {}  # recorded, not yet handed on: which job
        self._undelivered: deque[PageResult] = deque()  # committed, not yet handed on
        self._left_undelivered: deque[PageResult] = deque()  # committed by a run that died before handing on
        self.field_order: list[str] = []  # the fields the plugins extract: the first output columns

    @property
    def pages_done(self) -> int:
        return sum(self.counts.values())

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        config, ledger = self.config, self.ledger
        stale = ledger.mark_interrupted()  # this run holds the folder: no other one is running
        if stale:
            logger.info("{} {} ended without finishing (the process is gone): marked interrupted",
                        "runs" if len(stale) > 1 else "run", ", ".join(str(run) for run in stale))
        self.field_order = output_fields(self.registry, config)
        settings = with_absolute_paths(config.snapshot())
        record = {"inputs": self.inputs, "field_order": self.field_order, "password_given": bool(config.password)}
        self.run_id = ledger.start_run({**settings, **record}, fresh=config.fresh)
        if not config.fresh:
            self.done_before = ledger.done_keys(include_failed=not config.retry_failed)
            for result in ledger.iter_results():  # rebuild the run-wide checks
                self.registry.hook.pagemill_cross_check(result=result, seen=self.seen, config=config)
            self.seen.take_amendments()  # the pages done before hold them already
            self._left_undelivered.extend(r for r in ledger.undelivered() if r.key in self.done_before)
        if self.done_before:
            self._document_pages = ledger.document_pages()
            self._document_paths = ledger.document_paths()
        self.scheduler.is_done = self.done_before.__contains__
        self.scheduler.document_done = self._document_done
        self.registry.hook.pagemill_run_started(
            run={"run_id": self.run_id, "out_dir": config.out_dir, "config": settings}
        )

    def _document_done(self, document: Document) -> bool:
        """Whether every page of ``document`` is in the outputs already (a document that could not
        be opened is one page); its pages are then counted skipped, once per content: an identical
        copy at another path is not counted again (the scheduler does the same with a copy that
        is processed)."""
        sha = document.sha256
        if (sha, -1) in self.done_before:
            pages = 1
        else:
            pages = self._document_pages.get(sha) or 0
            if not pages or not all((sha, index) in self.done_before for index in range(pages)):
                self._ingesting.add(sha)
                return False
        if self._skips_counted.setdefault(sha, document.path) == document.path:
            self.scheduler.pages_known += pages
            self.scheduler.pages_skipped += pages
        self._seen_done(document)
        return True

    @property
    def discovering(self) -> bool:
        """Whether documents may still add pages to the run: inputs still being read, or documents
        not ingested yet. Until then ``pages_known`` is a lower bound."""
        scheduler = self.scheduler
        if scheduler.feeding:
            return True
        return bool(self._ingesting) and any(count > 0 for count in scheduler.outstanding.values())

    def _seen_done(self, document: Document) -> None:
        """A document done before, seen again: under a new name it was renamed (the ledger and
        the outputs take the new name), unless the old name still holds the same content (a copy,
        done once, said once as the scheduler says it)."""
        known = self._document_paths.get(document.sha256)
        if known is None or known == document.path:
            return
        if _same_content(Path(known), document) and Path(known).resolve() != Path(document.path).resolve():
            self.scheduler.note_copy(document, known)
            return
        self.ledger.rename_document(document.sha256, document.path)
        self._document_paths[document.sha256] = document.path
        logger.info("{}: renamed from {}; not redone", document.path, known)

    # -------------------------------------------------------------------- run
    def results(self) -> Iterator[PageResult]:
        """Pages as they are committed and handed on. Closing the iterator early cancels the run;
        an exception ends it as crashed (critical for a CriticalError) and is raised again."""
        try:
            self.prepare()
        except BaseException:
            self._close_ledger()
            raise
        status, failure = "finished", None
        try:
            yield from self._hand_on_again()
            for event in self.scheduler.run():
                self._record(event)
                if self.ledger.flush_due():
                    yield from self._commit()
                if self.on_tick:
                    self.on_tick(self)
            yield from self._commit()
        except GeneratorExit:
            status = "cancelled"
            self._abandon()
            raise
        except BaseException as exc:
            failure = exc
            status = ("cancelled" if isinstance(exc, KeyboardInterrupt)
                      else "critical" if isinstance(exc, CriticalError) else "crashed")
            self._abandon()
            raise
        finally:
            self._finish(status, failure)

    def _record(self, event: Any) -> None:
        ledger = self.ledger
        if isinstance(event, PageFinished):
            result = event.result
            ledger.add_result(self.run_id, self._cross_checked(result))
            self._job_of[result.key] = event.job
            self._apply_amendments()
            if result.status != "failed":  # a failed attempt is recorded by AttemptFailed
                ledger.add_attempt(self.run_id, result.sha256, result.page - 1, result.attempts, None,
                                   sum(result.stage_seconds.values()))
        elif isinstance(event, DocumentOpened):
            self.documents += 1
            doc = event.document
            self._ingesting.discard(doc.sha256)
            ledger.record_document(doc.sha256, doc.path, doc.size, event.pages, "ingested")
        elif isinstance(event, DocumentFailed):
            self.documents += 1
            doc = event.document
            self._ingesting.discard(doc.sha256)
            ledger.record_document(doc.sha256, doc.path, doc.size, None, "failed", event.error)
            ledger.add_result(
                self.run_id,
                PageResult(doc.path, doc.sha256, 0, 0, "failed", error=event.error, attempts=event.attempts),
            )
            self._job_of[(doc.sha256, -1)] = event.job
        elif isinstance(event, AttemptFailed):
            ledger.add_attempt(self.run_id, event.key[0], event.key[1], event.attempt, event.error, event.seconds)

    def _cross_checked(self, result: PageResult) -> PageResult:
        if result.status == "failed":
            return result
        extra = [
            issue
            for issues in self.registry.hook.pagemill_cross_check(result=result, seen=self.seen, config=self.config)
            for issue in (issues or ())
        ]
        if not extra:
            return result
        issues = result.issues + tuple(extra)
        return dataclasses.replace(result, issues=issues, status=status_of(issues))

    def _apply_amendments(self) -> None:
        """Issues a check across pages set on pages finished earlier (a duplicate ticket number is
        flagged on every page that carries it, whichever finished first). A page already handed on
        is changed in the ledger and the outputs, and passed to ``pagemill_page_amended``."""
        for key, issue in self.seen.take_amendments():
            amended = self.ledger.amend(self.run_id, key, lambda result: _with_issue(result, issue))
            if amended is None:
                continue
            before, after, committed_by = amended
            waiting = next((i for i, result in enumerate(self._undelivered) if result.key == key), None)
            if waiting is not None:
                self._undelivered[waiting] = after
            elif committed_by is not None and before != after:
                if committed_by == self.run_id:  # counted as handed on by this run
                    self.counts[before.status] -= 1
                    self.counts[after.status] += 1
                self.registry.hook.pagemill_page_amended(result=after)

    def _commit(self) -> Iterator[PageResult]:
        """Commit the batch, then hand each page on: hooks and callback just before its yield. A
        page is delivered once its yield is reached; until then it stays in ``_undelivered``."""
        self._undelivered.extend(self.ledger.flush())
        yield from self._hand_on(self._undelivered, counted=True)

    def _hand_on_again(self) -> Iterator[PageResult]:
        """Pages an earlier run committed but was killed before handing on, handed on first (as
        pages done before: counted skipped, not as this run's)."""
        if self._left_undelivered:
            logger.info("{} pages committed but not handed on by an earlier run: handed on now", len(self._left_undelivered))
        yield from self._hand_on(self._left_undelivered, counted=False)

    def _hand_on(self, committed: deque[PageResult], counted: bool) -> Iterator[PageResult]:
        """Each page of ``committed`` to the page-done hooks and the callback, then marked
        delivered (with the next batch) and yielded; it leaves ``committed`` only once handed on."""
        while committed:
            result = committed[0]
            self.registry.hook.pagemill_page_done(result=result)
            if self.on_page_done:
                self.on_page_done(result)
            committed.popleft()
            self.ledger.mark_delivered(self.run_id, result.key)
            if counted:
                self._count(result)
            yield result

    def _abandon(self) -> None:
        """Stop the workers at once (no task of this run reaches the next run of the engine) and
        take back the pages committed or finished but not handed on."""
        self.scheduler.cancel(immediate=True)
        self.scheduler.pool.terminate()
        try:
            self._undelivered.extend(self.ledger.flush())
        except LedgerError:
            self.ledger.drop_buffer()  # not committed: redone by the next run anyway
        keys = [result.key for result in self._undelivered]
        self._undelivered.clear()
        try:
            taken = self.ledger.forget(self.run_id, keys)
        except LedgerError as exc:
            logger.warning("{} finished pages not handed on could not be taken back: {}", len(keys), exc)
            return
        if taken:
            logger.info("{} finished pages were not handed on; the next run redoes them", taken)

    def uncommitted(self, job: int) -> bool:
        return job in self._job_of.values()

    def _count(self, result: PageResult) -> None:
        job = self._job_of.pop(result.key, 0)
        if self.on_committed is not None:
            self.on_committed(result, job)
        self.counts[result.status] += 1
        for stage, seconds in result.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        if result.error:
            self.errors_by_class[result.error.error_class] = self.errors_by_class.get(result.error.error_class, 0) + 1
            self.errors_by_type[result.error.type] = self.errors_by_type.get(result.error.type, 0) + 1

    # ----------------------------------------------------------------- ending
    def _finish(self, status: str, failure: BaseException | None) -> None:
        """Status, summary, outputs, the run's record; the ledger closed and the folder released;
        then the hook. While a failure is in flight nothing here may hide it: errors are logged."""
        quiet = failure is not None or status == "cancelled"
        try:
            summary = self._conclude(status, failure)
            self._close_ledger()
            self.registry.hook.pagemill_run_finished(summary=summary)
        except Exception as exc:
            self._close_ledger()
            if not quiet:
                raise
            logger.error("while ending the run: {}", _one_line(exc))

    def _conclude(self, status: str, failure: BaseException | None) -> RunSummary:
        scheduler = self.scheduler
        message = _one_line(failure) if failure is not None else ""
        if status == "finished" and scheduler.critical is not None:
            status, message = "critical", scheduler.critical.one_line()
        elif status == "finished" and scheduler.cancel_requested and self._work_left():
            status = "cancelled"  # a cancel that came once every page was done changes nothing
        totals = self.ledger.counts()  # the pages in the outputs, this run's and earlier ones
        if status == "finished" and totals["failed"]:
            status = "partial"
        mine = self.ledger.counts(self.run_id, in_outputs=True)["pages"] if self.run_id else 0
        summary = self.summary = self.make_summary(status, totals, message, mine)
        if self.config.out_dir:
            out = Path(self.config.out_dir)
            try:
                write_outputs(self.ledger, out, _jsonable(summary), self.field_order)
            except OSError as exc:
                summary = self.summary = self._critical(summary, f"cannot write the outputs in {out}: "
                                                        f"{exc.strerror or exc}; every finished page is kept in the "
                                                        f"ledger (pagemill export {out} --format jsonl writes them)")
        try:
            self.ledger.finish_run(self.run_id, summary.status, _jsonable(summary))
        except LedgerError as exc:
            summary = self.summary = self._critical(summary, str(exc))
        return summary

    def _work_left(self) -> bool:
        """Whether the run stopped with work not done: inputs not read to the end, or tasks taken
        and not finished (queued, waiting for a retry, held by a breaker, or lost in flight)."""
        scheduler = self.scheduler
        return bool(scheduler.feeding) or any(count > 0 for count in scheduler.outstanding.values())

    def _critical(self, summary: RunSummary, message: str) -> RunSummary:
        if summary.status in ("critical", "crashed"):
            return summary
        return dataclasses.replace(summary, status="critical", message=message)

    def _close_ledger(self) -> None:
        try:
            self.ledger.close()
        except LedgerError as exc:
            logger.error("{}", exc)

    def make_summary(self, status: str, totals: dict[str, int] | None = None, message: str = "",
                     in_outputs: int | None = None) -> RunSummary:
        """The run's figures (see engine.run_summary)."""
        return summarize(self, status, totals, message, in_outputs)


def _with_issue(result: PageResult, issue: Issue) -> PageResult:
    """``result`` with ``issue`` in place of any issue of the same code and field."""
    if result.status == "failed":
        return result
    issues = tuple(i for i in result.issues if (i.code, i.field) != (issue.code, issue.field)) + (issue,)
    return dataclasses.replace(result, issues=issues, status=status_of(issues))


def _same_content(path: Path, document: Document) -> bool:
    try:
        return path.is_file() and path.stat().st_size == document.size and sha256_of(path) == document.sha256
    except OSError:
        return False


def _one_line(error: BaseException) -> str:
    text = str(error) if isinstance(error, PagemillError) else f"{type(error).__name__}: {error}"
    return text.replace("\n", " ")


__all__ = ["RunSession", "preflight", "open_ledger", "merge_fields"]
