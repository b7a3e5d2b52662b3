"""The threshold what-if on a large visual log: seconds per window (one shift, 24 h, 7 days).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/whatif_bench.py                  # 200,000 rows
    .venv/bin/python benchmarks/whatif_bench.py --rows 1000000 --db /tmp/h.sqlite --keep

The log is the one ``history_bench.py`` bulk-loads (two stations, 30 days, 1 % reviewed); the
what-if is timed as the threshold panel and ``inspector threshold what-if`` run it
(``core.reports.whatif.what_if``, through ``VisualLog.score_sample`` and ``parts_in_band``), for
one station, each window ending in the middle of the month.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history_bench import STATIONS, T0, generate  # noqa: E402

from core.reports.whatif import what_if  # noqa: E402
from core.storage import VisualLog  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--db", type=Path, help="SQLite file (reused when it exists)")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="whatif-bench-"))
    path = args.db or folder / "log.sqlite"
    media_root = path.parent / "media"
    if not path.exists():
        seconds = generate(path, media_root, args.rows)
        print(f"generated {args.rows} rows in {seconds:.0f} s")
    end = T0 + timedelta(days=15)
    with VisualLog(f"sqlite:///{path}", media_root=media_root, station=STATIONS[0]) as log:
        what_if(log, 0.6, since=end - timedelta(hours=1), until=end, current=0.5)  # imports, caches
        print(f"{'window':<8} {'parts':>8} {'flips':>7} {'seconds':>8}")
        for name, length in (
            ("shift", timedelta(hours=8)),
            ("24h", timedelta(days=1)),
            ("7d", timedelta(days=7)),
        ):
            started = time.perf_counter()
            result = what_if(log, 0.6, since=end - length, until=end, current=0.5)
            took = time.perf_counter() - started
            print(f"{name:<8} {result.inspected:>8} {result.flips:>7} {took:>8.2f}")
    if not args.keep and args.db is None:
        for item in sorted(folder.rglob("*"), reverse=True):
            item.unlink() if item.is_file() else item.rmdir()
        folder.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
