"""Every benchmark in turn. ``--small`` runs each at a tiny size (``tox -e bench``), so none rots.

    python -m benchmarks.run_all [--small]
"""

from __future__ import annotations

import argparse

from benchmarks import end_to_end, memory, overhead
from engine.cli import main as pagemill

SMALL = {
    "bench": ["bench", "--stages", "noop", "--pages", "60", "--workers", "1,2", "--noop-ms", "2"],
    "overhead": ["--pages", "300", "--noop-ms", "2"],
    "end_to_end": ["--pages", "4", "--no-ocrmypdf"],
    "memory": ["--pages", "2000", "--early", "200", "--ocr-pages", "2"],
}
FULL = {
    "bench": ["bench", "--workers", "1,2", "--pages", "40"],
    "overhead": [],
    "end_to_end": [],
    "memory": [],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes, a minute or two in all")
    args = parser.parse_args(argv)
    sizes = SMALL if args.small else FULL
    print("# pagemill bench (worker counts)")
    code = pagemill(sizes["bench"])
    overhead.main(sizes["overhead"])
    end_to_end.main(sizes["end_to_end"])
    memory.main(sizes["memory"])
    return code


if __name__ == "__main__":
    raise SystemExit(main())
