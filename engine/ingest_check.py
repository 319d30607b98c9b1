"""What an ingest must return for its document to be read (parent side).

A plugin's ``pagemill_ingest`` returns the document's page tasks. The parent takes them only when
they describe the document whole: at least one page, one ``page_count`` for all, every index of
``0 .. page_count - 1`` exactly once, and the document's own sha256. Anything else would skip a
page silently or record one twice, so the document fails instead, with one line naming the plugin.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from engine.records import ErrorInfo

_NAMED = 5  # at most this many indexes are named in a message


def check_ingested(document: Any, pages: Sequence[Any], plugin: str | None) -> ErrorInfo | None:
    """None when ``pages`` are the document's pages, else the failure of the document."""
    if not pages:
        where = f" (plugin {plugin})" if plugin else ""
        return ErrorInfo("permanent", "EmptyDocumentError", f"ingest found no pages{where}", "ingest")
    problems = _problems(document, pages)
    if not problems:
        return None
    who = f"plugin {plugin}: pagemill_ingest" if plugin else "pagemill_ingest"
    message = f"{who} returned {len(pages)} page tasks that do not describe the document: {'; '.join(problems)}"
    return ErrorInfo("permanent", "PluginResultError", message, "ingest")


def _problems(document: Any, pages: Sequence[Any]) -> list[str]:
    counts = sorted({page.page_count for page in pages})
    if len(counts) > 1:
        return [f"page_count differs between them ({_listed(counts)})"]
    count = counts[0]
    problems = []
    if count != len(pages):
        problems.append(f"page_count {count}")
    seen = Counter(page.index for page in pages)
    repeated = [f"{index} ({times} times)" for index, times in sorted(seen.items()) if times > 1]
    if repeated:
        problems.append(f"index repeated: {_listed(repeated)}")
    missing = [index for index in range(count) if index not in seen] if count < 1_000_000 else []
    if missing:
        problems.append(f"index missing: {_listed(missing)}")
    outside = sorted(index for index in seen if not 0 <= index < count)
    if outside:
        problems.append(f"index outside 0..{count - 1}: {_listed(outside)}")
    others = {page.sha256 for page in pages} - {document.sha256}
    if others:
        problems.append("page tasks of another document (sha256 differs)")
    return problems


def _listed(items: Sequence[Any]) -> str:
    shown = ", ".join(str(item) for item in items[:_NAMED])
    return shown + (f" and {len(items) - _NAMED} more" if len(items) > _NAMED else "")


__all__ = ["check_ingested"]
