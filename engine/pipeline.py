"""The stages of one page, run inside a worker: load → OCR → extract → validate.

Also the ingest of a document (open, count, split into page tasks). Every exception a stage
raises becomes a :class:`StageFailure` that names the stage and the plugin, classified by the
plugins' ``pagemill_classify_error`` and then the built-in table; the parent decides what follows.
What each plugin returns was checked when it returned (engine.hookcalls): a result of the wrong
type is a permanent failure of the page naming the plugin and the hook, so what is merged here is
what the contract promises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from engine.config import EngineConfig
from engine.errors import PagemillError, PermanentError, PluginResultError
from engine.records import (
    Document,
    ErrorInfo,
    Field,
    Issue,
    OcrResult,
    PageResult,
    PageTask,
)
from engine.registry import PluginRegistry
from engine.retry import classify_error


@dataclass(frozen=True)
class StageFailure:
    """A stage raised: what, where, and which plugin (for its circuit breaker)."""

    error: ErrorInfo
    plugin: str | None
    hook: str
    seconds: float


class StageError(Exception):
    """Carries a StageFailure out of the pipeline."""

    def __init__(self, failure: StageFailure) -> None:
        super().__init__(failure.error.one_line())
        self.failure = failure


StageListener = Callable[[str, int, bool], None]  # (stage, busy_ns, failed)


class PagePipeline:
    """Runs the stage hooks of one registry; one per worker."""

    def __init__(
        self,
        registry: PluginRegistry,
        config: EngineConfig,
        listener: StageListener | None = None,
        on_stage_start: Callable[[str], None] | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.listener = listener
        self.on_stage_start = on_stage_start

    # ------------------------------------------------------------------ stages
    def _call(self, stage: str, hook_name: str, **kwargs: Any) -> tuple[Any, float]:
        hook = getattr(self.registry.hook, hook_name)
        if self.on_stage_start:
            self.on_stage_start(stage)
        start = time.perf_counter_ns()
        try:
            value = hook(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - every plugin error is classified, never lost;
            # KeyboardInterrupt and SystemExit too: raised by a plugin, they fail its page, not the worker
            busy = time.perf_counter_ns() - start
            if self.listener:
                self.listener(stage, busy, True)
            raise StageError(self._failure(exc, stage, hook_name, kwargs.get("page"), busy / 1e9)) from None
        busy = time.perf_counter_ns() - start
        if self.listener:
            self.listener(stage, busy, False)
        return value, busy / 1e9

    def _failure(self, exc: BaseException, stage: str, hook_name: str, page: PageTask | None, seconds: float) -> StageFailure:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: no classifier, the plugin named
            plugin = self.registry.plugin_of_traceback(exc.__traceback__)
            what = f"{type(exc).__name__}({str(exc)})" if str(exc).strip() else type(exc).__name__
            who = f"plugin {plugin}: {hook_name}" if plugin else hook_name
            info = ErrorInfo("permanent", type(exc).__name__, f"{who} raised {what}", stage)
            return StageFailure(info, plugin, hook_name, seconds)
        if isinstance(exc, PluginResultError):  # the plugin broke the contract: no classifier overrules that
            info = ErrorInfo(error_class="permanent", type=type(exc).__name__, message=message, stage=stage)
            return StageFailure(info, exc.plugin, exc.hook, seconds)
        error_class = None
        try:
            error_class = self.registry.hook.pagemill_classify_error(error=exc, stage=stage, page=page)
        except Exception:  # noqa: BLE001 - a broken classifier must not hide the real error
            error_class = None
        if error_class not in ("transient", "permanent", "critical"):
            error_class = classify_error(exc)
        plugin = self.registry.plugin_of_traceback(exc.__traceback__)
        info = ErrorInfo(error_class=error_class, type=type(exc).__name__, message=message, stage=stage)
        return StageFailure(info, plugin, hook_name, seconds)

    def ingest(self, document: Document) -> list[PageTask]:
        tasks, _ = self._call("ingest", "pagemill_ingest", document=document, config=self.config)
        if tasks is None:
            raise _nothing("UnsupportedDocumentError", "no plugin can read this file", "ingest", "pagemill_ingest", 0.0)
        return list(tasks)

    def process(self, page: PageTask) -> PageResult:
        config = self.config
        seconds: dict[str, float] = {}
        content, seconds["load"] = self._call("load", "pagemill_load_page", page=page, config=config)
        if content is None:
            raise _nothing("UnsupportedDocumentError", "no plugin can load this page", "load", "pagemill_load_page",
                           seconds["load"])
        if content.text is not None and not (config.force_ocr and content.image is not None):
            ocr = OcrResult(text=content.text, lines=tuple(content.text.splitlines()), engine="text-layer")
        else:
            if content.image is None:
                raise _nothing("PermanentError", "page has neither text nor image", "load", "pagemill_load_page",
                               seconds["load"])
            ocr, seconds["ocr"] = self._call("ocr", "pagemill_ocr", page=page, image=content.image, config=config)
            if ocr is None:
                raise _nothing("PermanentError", "no OCR plugin produced text", "ocr", "pagemill_ocr", seconds["ocr"])
        content = None  # free the image before the lighter stages
        field_lists, seconds["extract"] = self._call("extract", "pagemill_extract", page=page, ocr=ocr, config=config)
        fields = merge_fields(field_lists)
        issue_lists, seconds["validate"] = self._call(
            "validate", "pagemill_validate", page=page, fields=fields, config=config
        )
        issues = tuple(issue for issues in issue_lists for issue in (issues or ()))
        return PageResult(
            document=page.document,
            sha256=page.sha256,
            page=page.number,
            page_count=page.page_count,
            status=status_of(issues),
            fields=fields,
            issues=issues,
            stage_seconds=seconds,
            text_source=ocr.engine if ocr.engine == "text-layer" else "ocr",
            text=ocr.text,
        )


def _nothing(error_type: str, message: str, stage: str, hook: str, seconds: float) -> StageError:
    """A stage whose plugins all passed (returned None): a permanent failure of the page."""
    return StageError(StageFailure(ErrorInfo("permanent", error_type, message, stage), None, hook, seconds))


def merge_fields(field_lists: list[list[Field] | None]) -> dict[str, Field]:
    """Every plugin's fields, merged by name: the higher confidence wins (first on a tie)."""
    merged: dict[str, Field] = {}
    for fields in field_lists:
        for item in fields or ():
            current = merged.get(item.name)
            if current is None or item.confidence > current.confidence:
                merged[item.name] = item
    return merged


def status_of(issues: tuple[Issue, ...]) -> str:
    return "review" if any(issue.severity == "review" for issue in issues) else "ok"


def failed_result(page: PageTask, error: ErrorInfo, attempts: int, seconds: dict[str, float] | None = None) -> PageResult:
    """The record of a page that failed for good."""
    return PageResult(
        document=page.document,
        sha256=page.sha256,
        page=page.number,
        page_count=page.page_count,
        status="failed",
        error=error,
        attempts=attempts,
        stage_seconds=seconds or {},
    )


def error_info_of(exc: BaseException, stage: str) -> ErrorInfo:
    """An ErrorInfo for an exception raised outside a stage hook."""
    error_class = exc.error_class if isinstance(exc, PagemillError) else classify_error(exc)
    return ErrorInfo(error_class, type(exc).__name__, str(exc) or type(exc).__name__, stage)


__all__ = ["PagePipeline", "StageError", "StageFailure", "merge_fields", "failed_result", "PermanentError"]
