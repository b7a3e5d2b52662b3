"""``inspector bench``: the station's own runtime, timed on a folder of images.

Nothing of the station is re-implemented here, so the figures cannot drift from what runs on the
line. The images are copied into a temporary inbox under hidden names, which the hot folder
skips as writes in progress, and the station is opened on it as ``inspector run`` opens it: the
hot folder (``open_source("hotfolder:...")``, with the log's duplicate check), the ``Inspector``,
a throwaway SQLite ``VisualLog`` and ``StationRuntime`` with its writer thread; with ``serial``,
one part at a time and the rows recorded on the station's own thread. Each file is then renamed
to its final name in the inbox, as camera software (and ``inspector feed``) publishes a finished
file: all at once (flat out: throughput) or at a given rate (as a line feeds it: latency).

What is timed, per part:

- ``end_to_end``: from the moment its file appeared in the inbox to the moment the runtime gave
  its decision to the listeners (row committed, file moved out of the inbox). Flat out, this
  includes the wait in the backlog.
- ``in_station``: from the moment the runtime took the part from the source to the same moment.
- ``inference``: the real ``Inspector``'s time per batch, divided among the parts of the batch,
  through a thin wrapper that times each call it gets from the runtime.
- ``log``: recording the rows (image and heatmap files, the database commit), per part of a group
  commit, through the same kind of wrapper around the real ``VisualLog``.
- ``decode``: each file decoded once before the run, with the decoder the hot folder uses; the
  hot folder decodes on its own thread ahead of the station, where it cannot be timed alone.

And for the run: parts per second from the first file's appearance to the last committed row,
the process's CPU time per part, its memory every N parts (a long run must stay flat) and at its
peak, and the load average, which says how much else the machine was doing.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from core.common.errors import UserError
from core.common.fileio import sha256_file
from core.common.types import InspectedPart, Inspection, Part, Verdict
from core.imaging.decode import IMAGE_SUFFIXES, DecodeError, decode_image
from core.station.bench_output import (
    STAGE_HELP,
    STAGES,
    BenchReport,
    LatencyStats,
    MemorySample,
    format_report,
    plot_latency,
)

__all__ = [
    "STAGES",
    "STAGE_HELP",
    "BenchReport",
    "bench_devices",
    "format_report",
    "list_images",
    "plot_latency",
    "run_bench",
]

if TYPE_CHECKING:
    from core.inference.inspector import Inspector
    from core.sources import Source
    from core.storage import VisualLog

_WARMUP_RUNS = 5
_STALL_S = 60.0  # no part committed for this long: the run is broken, not slow


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted."""
    found = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return found


def rss_mb() -> float | None:
    """Resident memory of this process now, in MiB (Linux; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float | None:
    """The most resident memory this process has had, in MiB (None where unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _load_1min() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return float("nan")


class _Timings:
    """Per-part seconds of each figure; each figure is written by one thread at a time."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {name: [] for name in (*STAGES, "in_station", "end_to_end")}
        self.batches: list[int] = []

    def per_part(self, stage: str, seconds: float, parts: int) -> None:
        self.seconds[stage].extend([seconds / parts] * parts)


class _TimedInspector:
    """The real ``Inspector``; each inspection call the runtime makes is timed."""

    def __init__(self, inspector: Inspector, timings: _Timings) -> None:
        self._inspector, self._timings = inspector, timings

    def inspect_batch(self, images: list[np.ndarray]) -> list[Inspection]:
        started = time.perf_counter()
        results = self._inspector.inspect_batch(images)
        self._timings.per_part("inference", time.perf_counter() - started, len(images))
        self._timings.batches.append(len(images))
        return results

    def inspect(self, image: np.ndarray) -> Inspection:
        return self.inspect_batch([image])[0]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inspector, name)


class _TimedLog:
    """The real ``VisualLog``; each recording call is timed."""

    def __init__(self, visual_log: VisualLog, timings: _Timings) -> None:
        self._log, self._timings = visual_log, timings

    def record(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        decision = self._log.record(*args, **kwargs)
        self._timings.per_part("log", time.perf_counter() - started, 1)
        return decision

    def record_many(self, entries: Sequence[Any], **kwargs: Any) -> Any:
        started = time.perf_counter()
        decisions = self._log.record_many(entries, **kwargs)
        self._timings.per_part("log", time.perf_counter() - started, max(1, len(entries)))
        return decisions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


class _TimedSource:
    """The real source; the moment each part is handed to the runtime is kept."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self.taken: dict[str, float] = {}  # part_id -> perf_counter

    def next_part(self, timeout_s: float) -> Part | None:
        part = self._source.next_part(timeout_s)
        if part is not None:
            self.taken[part.part_id] = time.perf_counter()
        return part

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


def run_bench(
    model: Path,
    images: Sequence[Path],
    *,
    backend: str = "auto",
    device: str | None = None,
    threads: int | None = None,
    parts: int | None = None,
    pipelined: bool = True,
    max_batch: int = 8,
    rate_hz: float | None = None,
    memory_every: int = 500,
    work_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    second_opinion: bool = True,
) -> BenchReport:
    """Run the station on ``images`` and time it (see the module docstring).

    Args:
        model: The model bundle.
        images: Image files; each distinct one becomes one part (files with the same bytes as an
            earlier one are left out, because the station logs the same bytes once).
        backend, device, threads: For the ``Inspector``, as ``inspector run`` makes it; threads
            default to the Inspector's own default, the line's.
        parts: Run only the first this many images.
        pipelined: The station as it runs on the line (rows written by the writer thread, waiting
            parts inspected together up to ``max_batch``); False: one part at a time, the rows
            recorded on the station's thread.
        max_batch: Most waiting parts inspected at once (pipelined only).
        rate_hz: Publish files at this rate; None: all at once.
        memory_every: Sample the process's memory every this many parts (0: never).
        work_dir: Where the temporary folder goes; it is removed afterwards.
        progress: Called with (parts committed, parts) now and then.
        second_opinion: Run the bundle's good-only anomaly model beside the classifier, as the
            station does; False: the classifier alone (on torch: an ONNX graph has it built in).

    Raises:
        UserError: No images, or more parts asked for than there are distinct images.
    """
    from core.inference.inspector import Inspector
    from core.sources import open_source
    from core.station.runtime import StationRuntime
    from core.storage import VisualLog

    chosen, skipped = _distinct(images)
    if parts is not None:
        if parts <= 0:
            raise UserError("the number of parts must be positive")
        if parts > len(chosen):
            raise UserError(
                f"{parts} parts asked for, but only {len(chosen)} distinct images were given; the "
                "station inspects the same bytes once (make more with `inspector generate`)"
            )
        chosen = chosen[:parts]
    if not chosen:
        raise UserError("no images to run")
    total = len(chosen)
    load_before = _load_1min()
    timings = _Timings()
    timings.seconds["decode"] = _decode_times(chosen)
    batch_limit = max(1, max_batch) if pipelined else 1

    inspector = Inspector(
        model, backend=backend, device=device, threads=threads, second_opinion=second_opinion
    )
    try:
        _warm_up(inspector, chosen, batch_limit)
        with tempfile.TemporaryDirectory(prefix="inspector-bench-", dir=work_dir) as tmp:
            folder = Path(tmp)
            inbox = folder / "inbox"
            staged = _stage(chosen, inbox)
            url = f"sqlite:///{folder / 'bench.sqlite'}"
            media = folder / "media"

            def open_log() -> VisualLog:
                return VisualLog(url, media_root=media, station="bench")

            visual_log = open_log()
            source = _TimedSource(open_source(f"hotfolder:{inbox}", seen=visual_log.find_by_content_hash))
            memory: list[MemorySample] = []
            verdicts = {v.value: 0 for v in Verdict}
            available: dict[str, float] = {}
            every = memory_every if memory_every > 0 else total + 1
            report_every = max(1, total // 100)

            def on_committed(item: InspectedPart) -> None:
                now = time.perf_counter()
                decision = item.decision
                timings.seconds["end_to_end"].append(now - available.pop(Path(decision.source_ref).name))
                timings.seconds["in_station"].append(now - source.taken.pop(decision.part_id))
                verdicts[decision.verdict.value] += 1
                done = sum(verdicts.values())
                if done % every == 0 and (rss := rss_mb()) is not None:
                    memory.append(MemorySample(parts=done, rss_mb=round(rss, 1)))
                if progress is not None and (done % report_every == 0 or done == total):
                    progress(done, total)

            runtime = StationRuntime(
                cast("Source", source),
                cast("Inspector", _TimedInspector(inspector, timings)),
                cast("VisualLog", _TimedLog(visual_log, timings)),
                station_name="bench",
                listeners=[on_committed],
                max_parts=total,
                max_batch=batch_limit,
                writer_log=(lambda: cast("VisualLog", _TimedLog(open_log(), timings))) if pipelined else None,
            )
            try:
                cpu_started = time.process_time()
                feeder = _Feeder(staged, inbox, rate_hz, available)
                feeder.start()
                _run_until(runtime, total, feeder)
                last = time.perf_counter()
                cpu = time.process_time() - cpu_started
                feeder.join()
                rows = int(visual_log.count())
                left = sum(1 for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))
            finally:
                runtime.close()
            wall = last - feeder.first_published
    finally:
        inspector.close()

    settled = [m for m in memory if m.parts >= total // 10]
    growth = round(settled[-1].rss_mb - settled[0].rss_mb, 1) if len(settled) >= 2 else None
    peak = peak_rss_mb()
    return BenchReport(
        model=inspector.card.name,
        architecture=inspector.card.architecture,
        input_size=inspector.card.input_size,
        views=inspector.card.views,
        second_opinion=inspector.anomaly_threshold is not None,
        backend=inspector.backend,
        device=inspector.device,
        threads=threads or _threads_in_use(inspector),
        mode="pipelined" if pipelined else "serial",
        rate_hz=rate_hz,
        max_batch=batch_limit,
        images=total,
        duplicates_skipped=skipped,
        parts=runtime.parts_done,
        wall_s=round(wall, 3),
        parts_per_s=round(runtime.parts_done / wall, 2),
        cpu_ms_per_part=round(cpu * 1000.0 / total, 2),
        mean_batch=round(float(np.mean(timings.batches)), 2) if timings.batches else 0.0,
        stages={name: LatencyStats.of(timings.seconds[name]) for name in STAGES},
        in_station=LatencyStats.of(timings.seconds["in_station"]),
        end_to_end=LatencyStats.of(timings.seconds["end_to_end"]),
        verdicts=verdicts,
        rows_logged=rows,
        files_left_in_inbox=left,
        memory=tuple(memory),
        rss_growth_mb=growth,
        peak_rss_mb=None if peak is None else round(peak, 1),
        load_average=(load_before, _load_1min()),
        timings_s={name: list(values) for name, values in timings.seconds.items()},
    )


def _distinct(images: Sequence[Path]) -> tuple[list[Path], int]:
    """The images whose bytes are not those of an earlier one, and how many were left out."""
    chosen: list[Path] = []
    hashes: set[str] = set()
    for path in images:
        digest = sha256_file(Path(path))
        if digest not in hashes:
            hashes.add(digest)
            chosen.append(Path(path))
    return chosen, len(images) - len(chosen)


def _decode_times(images: Sequence[Path]) -> list[float]:
    """Seconds to read and decode each file, as the hot folder does (not images are left out)."""
    times = []
    for path in images:
        started = time.perf_counter()
        try:
            decode_image(path.read_bytes())
        except DecodeError:
            continue  # it becomes a not-inspected row, with no decode to time
        times.append(time.perf_counter() - started)
    return times


def _warm_up(inspector: Inspector, images: Sequence[Path], max_batch: int) -> None:
    """Run the model a few times first, as a station has by its second part."""
    for path in images:
        try:
            image = decode_image(path.read_bytes())
        except DecodeError:
            continue
        for n in sorted({1, max_batch}):
            for _ in range(_WARMUP_RUNS):
                inspector.inspect_batch([image] * n)
        return


def _stage(images: Sequence[Path], inbox: Path) -> list[Path]:
    """Copies of the images in ``inbox`` under hidden temporary names, in order; a rename publishes one."""
    inbox.mkdir(parents=True)
    staged = []
    for i, path in enumerate(images):
        target = inbox / f".{i:06d}_{path.name}.tmp"
        shutil.copyfile(path, target)
        staged.append(target)
    return staged


class _Feeder(threading.Thread):
    """Renames the staged files into the inbox, all at once or at ``rate_hz``; keeps when each appeared."""

    def __init__(self, staged: list[Path], inbox: Path, rate_hz: float | None, available: dict[str, float]):
        super().__init__(name="bench-feeder", daemon=True)
        self.staged, self.inbox, self.rate_hz, self.available = staged, inbox, rate_hz, available
        self.first_published = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            started = time.perf_counter()
            for i, path in enumerate(self.staged):
                if self.rate_hz:
                    delay = started + i / self.rate_hz - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                name = path.name[1 : -len(".tmp")]
                # Kept before the rename: the station may commit the part before this thread runs again.
                self.available[name] = now = time.perf_counter()
                if i == 0:
                    self.first_published = now
                os.replace(path, self.inbox / name)
        except BaseException as exc:
            self.error = exc


def _run_until(runtime: Any, total: int, feeder: _Feeder) -> None:
    """Step the runtime until ``total`` parts are committed; a stall or a feeder failure raises."""
    last_done, last_progress = 0, time.monotonic()
    while runtime.parts_done < total:
        runtime.process_next(0.2)
        if feeder.error is not None:
            raise feeder.error
        if runtime.parts_done != last_done:
            last_done, last_progress = runtime.parts_done, time.monotonic()
        elif time.monotonic() - last_progress > _STALL_S:
            raise RuntimeError(
                f"the station committed no part for {_STALL_S:.0f} s ({runtime.parts_done} of {total} done)"
            )
    runtime.drain()


def _threads_in_use(inspector: Inspector) -> int:
    if inspector.backend == "torch":
        import torch

        return int(torch.get_num_threads())
    from core.model.device import default_threads

    return default_threads()


def bench_devices(backend: str, device: str | None) -> list[str]:
    """The devices a bench runs: the one asked for, or the CPU and, when present, the GPU."""
    if device not in (None, "auto"):
        return [str(device)]
    return ["cpu", "cuda"] if _gpu_present(backend) else ["cpu"]


def _gpu_present(backend: str) -> bool:
    import importlib.util

    if backend in ("torch", "auto") and importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            return True
    if backend in ("onnx", "auto") and importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    return False
