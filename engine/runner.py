"""One run: discovery → scheduler → ledger → outputs, with the parent-side hooks.

A page counts as done only once the ledger has committed it: ``RunSession.results()`` yields
each page after its batch is committed, calls ``pagemill_page_done`` and the callbacks, and at the
end writes the output files from the ledger.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from loguru import logger

from engine.config import EngineConfig
from engine.errors import CriticalError
from engine.ledger import LEDGER_NAME, Ledger
from engine.pipeline import merge_fields, status_of
from engine.records import STAGES, Document, PageResult, RunSummary
from engine.registry import PluginRegistry
from engine.scheduler import (
    AttemptFailed,
    DocumentFailed,
    DocumentOpened,
    PageFinished,
    Scheduler,
)
from engine.seen import SeenValues
from engine.sinks import write_outputs



def preflight(config: EngineConfig, registry: PluginRegistry) -> None:
    """Critical conditions found before any work: output folder, free disk, plugin checks."""
    if config.out_dir:
        out = Path(config.out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".pagemill-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CriticalError(f"output folder {out} is not writable: {exc.strerror or exc}") from None
        free_mb = shutil.disk_usage(out).free / 2**20
        if free_mb < config.min_free_disk_mb:
            raise CriticalError(
                f"only {free_mb:.0f} MB free on the disk of {out}; --min-free-disk is {config.min_free_disk_mb} MB"
            )
    registry.hook.pagemill_preflight(config=config)


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
        self.counts = {"ok": 0, "review": 0, "failed": 0}
        self.errors_by_class: dict[str, int] = {}
        self.errors_by_type: dict[str, int] = {}
        self.stage_seconds = {stage: 0.0 for stage in STAGES}
        self.documents = 0
        self.started = time.perf_counter()
        self.run_id = 0
        self.summary: RunSummary | None = None
        self.done_before: set[tuple[str, int]] = set()
        self._document_pages: dict[str, int] = {}
        self.on_committed: Callable[[PageResult, int], Any] | None = None
        self._job_of: dict[tuple[str, int], int] = {}  # recorded, not yet committed: which job

    @property
    def pages_done(self) -> int:
        return sum(self.counts.values())

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        config = self.config
        self.run_id = self.ledger.start_run({**config.snapshot(), "inputs": self.inputs})
        if not config.fresh:
            self.done_before = self.ledger.done_keys(include_failed=not config.retry_failed)
            for result in self.ledger.iter_results():  # rebuild the run-wide checks
                self.registry.hook.pagemill_cross_check(result=result, seen=self.seen, config=config)
        self._document_pages = self.ledger.document_pages() if self.done_before else {}
        self.scheduler.is_done = self.done_before.__contains__
        self.scheduler.document_done = self._document_done
        self.registry.hook.pagemill_run_started(
            run={"run_id": self.run_id, "out_dir": config.out_dir, "config": config.snapshot()}
        )

    def _document_done(self, document: Document) -> bool:
        if (document.sha256, -1) in self.done_before:
            return True
        pages = self._document_pages.get(document.sha256)
        if not pages:
            return False
        if all((document.sha256, index) in self.done_before for index in range(pages)):
            self.scheduler.pages_known += pages
            self.scheduler.pages_skipped += pages
            return True
        return False

    # -------------------------------------------------------------------- run
    def results(self) -> Iterator[PageResult]:
        """Pages as they are committed. Closing the iterator early cancels the run."""
        self.prepare()
        status = "finished"
        try:
            for event in self.scheduler.run():
                self._record(event)
                if self.ledger.flush_due():
                    yield from self._commit()
                if self.on_tick:
                    self.on_tick(self)
            yield from self._commit()
        except GeneratorExit:
            status = "cancelled"
            self.scheduler.cancel(immediate=True)
            self.scheduler.pool.terminate()
            self._commit_quietly()
            raise
        finally:
            self._finish(status)

    def _record(self, event: Any) -> None:
        ledger = self.ledger
        if isinstance(event, PageFinished):
            result = event.result
            ledger.add_result(self.run_id, self._cross_checked(result))
            self._job_of[result.key] = event.job
            if result.status != "failed":  # a failed attempt is recorded by AttemptFailed
                ledger.add_attempt(self.run_id, result.sha256, result.page - 1, result.attempts, None,
                                   sum(result.stage_seconds.values()))
        elif isinstance(event, DocumentOpened):
            self.documents += 1
            doc = event.document
            ledger.record_document(doc.sha256, doc.path, doc.size, event.pages, "ingested")
        elif isinstance(event, DocumentFailed):
            self.documents += 1
            doc = event.document
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

    def _commit(self) -> Iterator[PageResult]:
        committed = self.ledger.flush()
        for result in committed:  # done now, whether or not the consumer takes them all
            self._count(result)
            self.registry.hook.pagemill_page_done(result=result)
            if self.on_page_done:
                self.on_page_done(result)
        yield from committed

    def _commit_quietly(self) -> None:
        for result in self.ledger.flush():
            self._count(result)

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
    def _finish(self, status: str) -> None:
        scheduler = self.scheduler
        if scheduler.critical is not None:
            status = "critical"
        elif scheduler.cancel_requested and status == "finished":
            status = "cancelled"
        elif status == "finished" and self.counts["failed"]:
            status = "partial"
        summary = self.make_summary(status)
        self.summary = summary
        self.ledger.finish_run(self.run_id, status, _jsonable(summary))
        if self.config.out_dir:
            write_outputs(self.ledger, Path(self.config.out_dir), _jsonable(summary))
        self.registry.hook.pagemill_run_finished(summary=summary)

    def make_summary(self, status: str) -> RunSummary:
        wall = time.perf_counter() - self.started
        snapshot = self.scheduler.pool.board.snapshot()
        pages = self.pages_done
        message = ""
        if self.scheduler.critical is not None:
            message = self.scheduler.critical.one_line()
        return RunSummary(
            run_id=self.run_id,
            out_dir=self.config.out_dir,
            status=status,
            pages_total=pages + self.scheduler.pages_skipped,
            pages_ok=self.counts["ok"],
            pages_review=self.counts["review"],
            pages_failed=self.counts["failed"],
            pages_skipped=self.scheduler.pages_skipped,
            documents=self.documents,
            wall_seconds=round(wall, 3),
            pages_per_second=round(pages / wall, 3) if wall > 0 else 0.0,
            stage_seconds={k: round(v, 3) for k, v in self.stage_seconds.items() if v},
            stage_busy_seconds={k: round(v, 3) for k, v in snapshot.stage_busy_seconds.items() if v},
            errors_by_class=dict(self.errors_by_class),
            errors_by_type=dict(self.errors_by_type),
            peak_workers=self.scheduler.pool.peak_workers,
            breaker_events=sum(self.scheduler.breakers.counts().values()),
            message=message,
        )


def _jsonable(summary: RunSummary) -> dict[str, Any]:
    data = dataclasses.asdict(summary)
    data["exit_code"] = summary.exit_code
    return data


def open_ledger(config: EngineConfig) -> Ledger:
    path = Path(config.out_dir) / LEDGER_NAME if config.out_dir else None
    if path is not None:
        logger.debug("ledger {}", path)
    return Ledger(path)


__all__ = ["RunSession", "preflight", "open_ledger", "merge_fields"]
