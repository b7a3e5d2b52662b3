"""Parts per second of the station pipeline vs the straightforward station, same run, same images.

Alternates the two (``rounds`` times each) on the same list of parts, because the CPU of a shared
machine is noisy, and reports the median parts per second of each and their ratio. Usage::

    python benchmarks/station_ratio.py BUNDLE IMAGE_DIR [--parts 300] [--rounds 3] [--backend onnx]
        [--serial] [--json OUT]

The bundle should have an ONNX export for ``--backend onnx`` (see ``make_bundles.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    from straightforward_station import run_straightforward

    from core.station.bench import list_images, run_bench

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", type=Path)
    parser.add_argument("image_dir", type=Path)
    parser.add_argument("--parts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--serial", action="store_true", help="run our pipeline one part at a time too")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    images = _interleaved(list_images(args.image_dir))[: args.parts]
    ours: list[dict[str, object]] = []
    baseline: list[dict[str, object]] = []
    for round_ in range(args.rounds):
        report = run_bench(
            args.bundle, images, backend=args.backend, threads=args.threads, pipelined=not args.serial,
            memory_every=0,
        )  # fmt: skip
        ours.append({
            "parts_per_s": report.parts_per_s, "end_to_end_p50_ms": report.end_to_end.p50_ms,
            "inference_p50_ms": report.stages["inference"].p50_ms, "rows_logged": report.rows_logged,
            "load_average": report.load_average,
        })  # fmt: skip
        baseline.append(run_straightforward(args.bundle, images))
        print(
            f"round {round_ + 1}: ours {report.parts_per_s:.1f} parts/s ({report.backend}, {report.mode}), "
            f"straightforward {baseline[-1]['parts_per_s']:.1f} parts/s; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    ours_pps = statistics.median(float(r["parts_per_s"]) for r in ours)  # type: ignore[arg-type]
    base_pps = statistics.median(float(r["parts_per_s"]) for r in baseline)  # type: ignore[arg-type]
    summary = {
        "bundle": str(args.bundle),
        "parts": len(images),
        "rounds": args.rounds,
        "ours_parts_per_s_median": ours_pps,
        "straightforward_parts_per_s_median": base_pps,
        "ratio": round(ours_pps / base_pps, 2),
        "ours": ours,
        "straightforward": baseline,
    }
    print(
        f"median over {args.rounds} rounds: ours {ours_pps:.1f} parts/s, straightforward {base_pps:.1f} "
        f"parts/s, ratio {summary['ratio']:.1f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


def _interleaved(images: list[Path]) -> list[Path]:
    """One image of each folder in turn, so that a prefix has good and bad parts alike."""
    folders: dict[Path, list[Path]] = {}
    for path in images:
        folders.setdefault(path.parent, []).append(path)
    out: list[Path] = []
    for i in range(max(len(v) for v in folders.values())):
        out.extend(v[i] for v in folders.values() if i < len(v))
    return out


if __name__ == "__main__":
    sys.exit(main())
