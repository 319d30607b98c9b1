"""Memory: the parent stays flat however many pages a run has; workers stay small during OCR.

Parent RSS is sampled while one run goes over a no-op archive (``plugins.noop``): after 1,000
pages and at the end (20,000 pages by default). Target: ratio ≤ 1.2. Worker RSS is the largest
worker's RSS together with its children (the tesseract it runs), sampled while real OCR runs over
generated tickets: only samples in which the worker had a tesseract running count. Target: ≤ 150 MB.

    python -m benchmarks.memory [--pages 20000] [--ocr-pages 12]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import psutil

from benchmarks.common import header, noop_archive, quiet_logs, table, verdict
from engine.api import Engine
from engine.bench_probes import RssSampler, TreeRss
from engine.config import EngineConfig
from engine.sample import generate_sample


def parent_rss(pages: int, early: int) -> tuple[float, float]:
    me = psutil.Process()
    marks: dict[str, float] = {}

    def sample(progress) -> None:
        rss = me.memory_info().rss / 2**20
        if progress.pages_done >= early and "early" not in marks:
            marks["early"] = rss
        marks["last"] = rss

    config = EngineConfig(workers="2", plugins=("plugins.noop",), options={"noop_ms": 0}, max_pages_per_worker=0)
    with noop_archive(pages, per_document=20) as folder, tempfile.TemporaryDirectory() as out:
        summary = Engine(config.replace(out_dir=out), on_progress=sample).run(folder)
    assert summary.pages_ok + summary.pages_review == pages
    marks["last"] = max(marks.get("last", 0.0), me.memory_info().rss / 2**20)
    return marks.get("early", marks["last"]), marks["last"]


def worker_rss(pages: int) -> TreeRss | None:
    """The largest worker + tesseract RSS seen while a tesseract ran; None when no sample caught one."""
    with tempfile.TemporaryDirectory() as scratch:
        archive = generate_sample(Path(scratch) / "archive", pages=pages, seed=3, broken=False)
        with Engine(EngineConfig(workers="2", out_dir=str(Path(scratch) / "out"))) as engine:
            with RssSampler(engine, interval=0.05) as sampler:
                engine.run(archive.documents[0].parent)
    return sampler.peak_during_children


def main(argv: list[str] | None = None) -> dict[str, float | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20000)
    parser.add_argument("--early", type=int, default=1000)
    parser.add_argument("--ocr-pages", type=int, default=12)
    args = parser.parse_args(argv)
    quiet_logs()
    early, last = parent_rss(args.pages, args.early)
    worker = worker_rss(args.ocr_pages)
    ratio = last / early
    print(header(f"Memory: parent over {args.pages} no-op pages, workers over {args.ocr_pages} OCR pages"))
    print(table(["measure", "MB", "target", "verdict"], [
        [f"parent RSS after {args.early} pages", round(early, 1), "", ""],
        [f"parent RSS after {args.pages} pages", round(last, 1), f"≤ 1.2 × ({ratio:.2f})", verdict(ratio <= 1.2)],
        worker_row(worker),
    ]))
    if worker is not None:
        print(f"\nlargest worker + tesseract: worker {worker.own_mb:.1f} MB + {worker.children} "
              f"child process{'es' if worker.children != 1 else ''} {worker.children_mb:.1f} MB")
    return {"parent_early_mb": early, "parent_last_mb": last, "ratio": ratio,
            "worker_mb": worker.total_mb if worker else None,
            "worker_own_mb": worker.own_mb if worker else None,
            "worker_children_mb": worker.children_mb if worker else None}


def worker_row(worker: TreeRss | None) -> list[object]:
    label = "largest worker + tesseract RSS during OCR"
    if worker is None:
        return [label, "–", "≤ 150", "not measured: no sample caught tesseract running (give more --ocr-pages)"]
    return [label, round(worker.total_mb, 1), "≤ 150", verdict(worker.total_mb <= 150)]


if __name__ == "__main__":
    main()
