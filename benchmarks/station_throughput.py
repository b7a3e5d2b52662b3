"""Parts per second of the headless station on real images, next to ``inspector bench``.

The station runs as ``inspector run --headless`` assembles it (``build_runtime``: hot folder ->
inspector -> visual log on its writer thread, a JSON line per part), on copies of the images in
a temporary inbox; the model load and the first part are left out, as the bench leaves out its
warm-up. ``inspector bench`` (``core.station.bench.run_bench``) runs the same ``StationRuntime``
assembled by itself, so the two should agree within noise: this checks that the bench's assembly
has not drifted from the command's. Rounds of the two (same model, images, batch size and
threads) alternate, because a shared machine's CPU is noisy; the medians and their ratio are
printed. Usage::

    python benchmarks/station_throughput.py BUNDLE [--images DIR] [--parts 400] [--rounds 2]
        [--threads N] [--backend auto|torch|onnx] [--max-batch 8] [--json OUT]

IMAGE_DIR defaults to the casting images (``/work/shared/datasets/casting/train``); they are read
from there and copied only into a temporary folder, never into the repository. A bundle for any
architecture can be made with ``benchmarks/make_bundles.py`` (throughput does not depend on the
weights).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CASTING = Path("/work/shared/datasets/casting/train")


def pick_images(folder: Path, parts: int) -> list[Path]:
    """Up to ``parts`` images spread over the whole (sorted) folder, so every class is in.

    Never the same file twice: the station logs the same bytes once.
    """
    from core.imaging.decode import IMAGE_SUFFIXES

    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise SystemExit(f"no images under {folder}")
    step = max(1, len(found) // parts)
    return found[::step][:parts]


def run_station(
    model: Path, images: list[Path], work: Path, *, threads: int | None, backend: str, max_batch: int
) -> dict[str, float]:
    """One round of the headless station; parts per second after the first part."""
    from core.outputs.jsonl import JsonLinesOutput
    from core.station.config import StationConfig
    from core.station.runtime import build_runtime

    folder = Path(tempfile.mkdtemp(prefix="station-throughput-", dir=work))
    inbox = folder / "inbox"
    inbox.mkdir()
    try:
        for i, path in enumerate(images):
            shutil.copyfile(path, inbox / f"{i:06d}_{path.name}")
        config = StationConfig(
            source=f"hotfolder:{inbox}",
            model=model,
            db_url=f"sqlite:///{folder / 'log.sqlite'}",
            media_root=folder / "media",
            station_name="throughput",
            threads=threads,
            backend=backend,  # type: ignore[arg-type]
            max_batch=max_batch,
            source_options={"settle_s": 0.2, "scan_interval_s": 0.1},  # type: ignore[arg-type]
        )
        runtime = build_runtime(config)
        sink = JsonLinesOutput(io.StringIO())  # the per-part JSON line of the headless station
        runtime.listeners.append(sink.publish)
        try:
            while runtime.parts_done == 0:  # model warm, inbox listed, first part through
                runtime.process_next(0.5)
            first, started = runtime.parts_done, time.perf_counter()
            while runtime.parts_done < len(images):
                runtime.process_next(0.2)
            runtime.drain()
            wall = time.perf_counter() - started
            done = runtime.parts_done
        finally:
            runtime.close()
        if done != len(images):
            raise SystemExit(f"station logged {done} of {len(images)} parts")
        return {"parts": done - first, "wall_s": wall, "parts_per_s": (done - first) / wall}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_bench_round(
    model: Path, images: list[Path], work: Path, *, threads: int | None, backend: str, max_batch: int
) -> dict[str, float] | None:
    try:
        from core.station.bench import run_bench
    except ImportError:
        return None
    report = run_bench(
        model, images, backend=backend, threads=threads, max_batch=max_batch, pipelined=True, work_dir=work
    )
    return {"parts": report.parts, "wall_s": report.wall_s, "parts_per_s": report.parts_per_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--images", type=Path, default=CASTING)
    parser.add_argument("--parts", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    images = pick_images(args.images, args.parts)
    common = {"threads": args.threads, "backend": args.backend, "max_batch": args.max_batch}
    station: list[dict[str, float]] = []
    bench: list[dict[str, float]] = []
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        b = run_bench_round(args.bundle, images, args.work_dir, **common)  # type: ignore[arg-type]
        if b is not None:
            bench.append(b)
            print(f"round {r + 1}: inspector bench  {b['parts_per_s']:7.1f} parts/s", flush=True)
        s = run_station(args.bundle, images, args.work_dir, **common)  # type: ignore[arg-type]
        station.append(s)
        print(f"round {r + 1}: headless station {s['parts_per_s']:7.1f} parts/s", flush=True)

    station_pps = statistics.median(s["parts_per_s"] for s in station)
    summary: dict[str, object] = {
        "bundle": str(args.bundle),
        "images": str(args.images),
        "parts": len(images),
        "station_parts_per_s": round(station_pps, 2),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **common,
    }
    print(f"headless station: {station_pps:.1f} parts/s (median of {len(station)})")
    if bench:
        bench_pps = statistics.median(b["parts_per_s"] for b in bench)
        ratio = station_pps / bench_pps
        summary.update(bench_parts_per_s=round(bench_pps, 2), ratio=round(ratio, 3))
        verdict = "within" if abs(ratio - 1.0) <= 0.15 else "NOT within"
        print(f"inspector bench:  {bench_pps:.1f} parts/s (median of {len(bench)})")
        print(f"station / bench = {ratio:.2f} ({verdict} 15%)")
    else:
        print("core.station.bench is not available: no comparison")
    print(f"load average before/after: {summary['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
