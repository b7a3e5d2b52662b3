"""The station pipeline benchmark behind ``inspector bench``.

Every part goes through what the station does with it: read and decode the file, preprocess it,
inference plus Grad-CAM heatmap, the display overlay, then the visual log (PNG-encode the
heatmap, write the image and heatmap files, commit the row; the rows of parts that wait for the
writer together are committed in one transaction, as the station's writer does) in a throwaway
SQLite file. Each
stage is timed per part; the report gives p50/p95/p99 per stage and end to end, parts per
second, and the process's memory sampled along the run (a long run must stay flat: no leak from
hooks, sessions or the log) and at its peak.

Two ways to run the stages:

- ``pipelined`` (default): four threads, as a station can overlap them — a reader (decode,
  preprocess), the inference, the overlay, and a writer that owns the visual log — joined by
  small bounded queues, so the overlay, file and database work overlap with inference. When
  parts queue up, the inference takes up to ``max_batch`` of the waiting ones at once. Unless
  told otherwise, the inference gets all cores but one (at least one), leaving a core to the
  other stages.
- ``serial``: one part at a time through all the stages, on one thread, as ``StationRuntime``
  does today; the inference gets every core.
"""

from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.common.types import Inspection, Part, Verdict
from core.imaging.decode import IMAGE_SUFFIXES, DecodeError, decode_image
from core.inference.inspector import Inspector

STAGES = ("decode", "preprocess", "inference", "overlay", "log")
STAGE_HELP = {
    "decode": "read the file and decode it to 8-bit grayscale",
    "preprocess": "resize and normalise to the model input",
    "inference": "model score and Grad-CAM, normalised to the 8-bit heatmap (per part of a batch)",
    "overlay": "colour map blended on the part at display resolution",
    "log": "PNG-encode the heatmap, write image and heatmap files, commit the row (per part of a group commit)",
}
_WARMUP_RUNS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyStats:
    """Percentiles of one stage over all parts, in milliseconds."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float] | np.ndarray) -> LatencyStats:
        if len(seconds) == 0:
            return cls(p50_ms=0.0, p95_ms=0.0, p99_ms=0.0, mean_ms=0.0, max_ms=0.0)
        ms = np.asarray(seconds, dtype=np.float64) * 1000.0
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        return cls(
            p50_ms=round(float(p50), 3),
            p95_ms=round(float(p95), 3),
            p99_ms=round(float(p99), 3),
            mean_ms=round(float(ms.mean()), 3),
            max_ms=round(float(ms.max()), 3),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MemorySample:
    parts: int  # parts logged when the sample was taken
    rss_mb: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchReport:
    """What one benchmark run measured."""

    model: str
    architecture: str
    input_size: int
    views: int
    backend: str
    device: str
    threads: int
    mode: str  # "pipelined" or "serial"
    rate_hz: float | None  # parts fed at this rate; None: as fast as the pipeline takes them
    max_batch: int
    images: int  # distinct image files (cycled when more parts were asked for)
    parts: int
    wall_s: float
    parts_per_s: float
    # CPU time of the whole process (all threads) per part: what the pipeline costs, however
    # busy the machine was. On an idle machine parts/s can approach cores * 1000 / this.
    cpu_ms_per_part: float
    stages: dict[str, LatencyStats]
    end_to_end: LatencyStats  # from the start of decoding to the committed row
    verdicts: dict[str, int]
    rows_logged: int
    memory: tuple[MemorySample, ...]
    rss_growth_mb: float | None  # last sample minus the first one after the warm-up tenth
    peak_rss_mb: float | None
    load_average: tuple[float, float]  # 1-minute load before and after: other work on the CPU
    timings_s: dict[str, list[float]] = field(repr=False)  # per part, for plots

    def to_dict(self, *, with_timings: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_timings:
            data.pop("timings_s")
        return data


@dataclass(slots=True)
class _Item:
    index: int
    path: Path
    started: float
    part: Part
    batch: np.ndarray | None = None
    preprocess_s: float = 0.0
    inspection: Inspection | None = None


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted."""
    found = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
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


class _Recorder:
    """Per-stage timings and memory samples, written by the pipeline's threads.

    Timings go into arrays sized for the whole run up front, so that the bookkeeping itself does
    not grow the memory that the run is watching. Each stage is written by one thread only.
    """

    def __init__(self, total: int, memory_every: int) -> None:
        self._times = {name: np.zeros(total, dtype=np.float64) for name in (*STAGES, "end_to_end")}
        self._counts = dict.fromkeys(self._times, 0)
        self.memory: list[MemorySample] = []
        self.verdicts: dict[str, int] = {v.value: 0 for v in Verdict}
        self.memory_every = max(1, memory_every)
        self.logged = 0

    def add(self, stage: str, seconds: float) -> None:
        n = self._counts[stage]
        self._times[stage][n] = seconds
        self._counts[stage] = n + 1

    def values(self, stage: str) -> np.ndarray:
        return self._times[stage][: self._counts[stage]]

    def logged_one(self, verdict: Verdict) -> None:
        self.logged += 1
        self.verdicts[verdict.value] += 1
        if self.logged % self.memory_every == 0:
            rss = rss_mb()
            if rss is not None:
                self.memory.append(MemorySample(parts=self.logged, rss_mb=round(rss, 1)))


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
    display_size: tuple[int, int] | None = None,
    memory_every: int = 500,
    work_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BenchReport:
    """Run ``parts`` parts (default: each image once) through the station pipeline.

    Args:
        model: The model bundle.
        images: Image files; cycled when ``parts`` is larger.
        backend, device, threads: As for ``Inspector``.
        pipelined: Overlap the stages on four threads (see the module docstring).
        max_batch: In pipelined mode, the most waiting parts inferred together.
        rate_hz: Parts arrive at this rate, as from a line, instead of as fast as the pipeline
            takes them; the end-to-end latency is then the one a part sees at that rate, where
            flat out it is mostly time spent queueing behind the slowest stage.
        display_size: (width, height) of the overlay; default each image's own size.
        memory_every: Sample the resident memory every this many parts.
        work_dir: Where the throwaway log goes; default a temporary folder, removed afterwards.
        progress: Called with (parts logged, parts) now and then.
    """
    from core.imaging.overlay import make_overlay
    from core.storage import VisualLog

    if not images:
        raise ValueError("no images to run")
    total = len(images) if parts is None else int(parts)
    if total <= 0:
        raise ValueError("the number of parts must be positive")
    load_before = _load_1min()
    if threads is None and pipelined:
        from core.model.device import default_threads

        threads = max(1, default_threads() - 1)
    inspector = Inspector(model, backend=backend, device=device, threads=threads)
    preset = inspector.preset
    warm = preset.batch([decode_image(Path(images[0]).read_bytes())])
    for n in (1, max_batch if pipelined else 1):
        for _ in range(_WARMUP_RUNS):
            inspector.inspect_preprocessed(np.repeat(warm, n, axis=0))
    recorder = _Recorder(total, memory_every if memory_every > 0 else total + 1)
    report_every = max(1, total // 100)

    run_started = [0.0]

    def read(index: int) -> _Item:
        if rate_hz:
            delay = run_started[0] + index / rate_hz - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        path = Path(images[index % len(images)])
        started = time.perf_counter()
        data: bytes | None = None
        try:
            data = path.read_bytes()
            image, error = decode_image(data), None
        except (OSError, DecodeError) as exc:
            image, error = None, str(exc)
        decoded = time.perf_counter()
        recorder.add("decode", decoded - started)
        part = Part(
            source_ref=str(path), arrived_at=datetime.now(UTC), image=image, encoded=data, error=error
        )
        item = _Item(index=index, path=path, started=started, part=part)
        if image is not None:
            item.batch = preset.batch([image])
            item.preprocess_s = time.perf_counter() - decoded
            recorder.add("preprocess", item.preprocess_s)
        return item

    def infer(items: list[_Item]) -> None:
        todo = [it for it in items if it.batch is not None]
        if not todo:
            return
        start = time.perf_counter()
        arrays = [it.batch for it in todo if it.batch is not None]
        batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        inspections = inspector.inspect_preprocessed(batch, started=start - todo[0].preprocess_s)
        each = (time.perf_counter() - start) / len(todo)
        for it, inspection in zip(todo, inspections, strict=True):
            it.inspection = inspection
            it.batch = None
            recorder.add("inference", each)

    def overlay(item: _Item) -> None:
        if item.inspection is not None and item.part.image is not None:
            start = time.perf_counter()
            # What the operator would be shown; the log keeps the 8-bit heatmap, not this.
            make_overlay(item.part.image, item.inspection.heatmap, size=display_size)
            recorder.add("overlay", time.perf_counter() - start)

    def log(items: list[_Item], visual_log: VisualLog) -> None:
        # The parts waiting for the writer are committed together, as the station's writer does.
        from core.storage import Entry

        start = time.perf_counter()
        entries = [Entry(part=it.part, inspection=it.inspection) for it in items]
        decisions = visual_log.record_many(
            entries, model_hash=inspector.model_hash, model_name=inspector.card.name
        )
        done = time.perf_counter()
        for item, decision in zip(items, decisions, strict=True):
            recorder.add("log", (done - start) / len(items))
            recorder.add("end_to_end", done - item.started)
            recorder.logged_one(decision.verdict)
            if progress is not None and (recorder.logged % report_every == 0 or recorder.logged == total):
                progress(recorder.logged, total)

    with tempfile.TemporaryDirectory(prefix="inspector-bench-", dir=work_dir) as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        media = Path(tmp) / "media"
        started, cpu_started = time.perf_counter(), time.process_time()
        run_started[0] = started
        if pipelined:
            rows = _run_pipelined(
                total, read, infer, overlay, log, lambda: VisualLog(url, media_root=media), max_batch
            )
        else:
            rows = _run_serial(total, read, infer, overlay, log, lambda: VisualLog(url, media_root=media))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    inspector.close()

    memory = tuple(recorder.memory)
    settled = [m for m in memory if m.parts >= total // 10]
    growth = round(settled[-1].rss_mb - settled[0].rss_mb, 1) if len(settled) >= 2 else None
    peak = peak_rss_mb()
    return BenchReport(
        model=inspector.card.name,
        architecture=inspector.card.architecture,
        input_size=inspector.card.input_size,
        views=inspector.card.views,
        backend=inspector.backend,
        device=inspector.device,
        threads=threads or _threads_in_use(inspector),
        mode="pipelined" if pipelined else "serial",
        rate_hz=rate_hz,
        max_batch=max_batch if pipelined else 1,
        images=len(images),
        parts=total,
        wall_s=round(wall, 3),
        parts_per_s=round(total / wall, 2),
        cpu_ms_per_part=round(cpu * 1000.0 / total, 2),
        stages={name: LatencyStats.of(recorder.values(name)) for name in STAGES},
        end_to_end=LatencyStats.of(recorder.values("end_to_end")),
        verdicts=recorder.verdicts,
        rows_logged=rows,
        memory=memory,
        rss_growth_mb=growth,
        peak_rss_mb=None if peak is None else round(peak, 1),
        load_average=(load_before, _load_1min()),
        timings_s={name: recorder.values(name).tolist() for name in (*STAGES, "end_to_end")},
    )


def _threads_in_use(inspector: Inspector) -> int:
    if inspector.backend == "torch":
        import torch

        return int(torch.get_num_threads())
    from core.model.device import default_threads

    return default_threads()


def _run_serial(
    total: int,
    read: Callable[[int], _Item],
    infer: Callable[[list[_Item]], None],
    overlay: Callable[[_Item], None],
    log: Callable[[list[_Item], Any], None],
    open_log: Callable[[], Any],
) -> int:
    with open_log() as visual_log:
        for index in range(total):
            item = read(index)
            infer([item])
            overlay(item)
            log([item], visual_log)
        return int(visual_log.count())


def _with_waiting(q: queue.Queue[_Item | None], first: _Item, limit: int) -> tuple[list[_Item], bool]:
    """``first`` and the items already in ``q``, up to ``limit``; True when the end mark came too."""
    items = [first]
    while len(items) < limit:
        try:
            nxt = q.get_nowait()
        except queue.Empty:
            break
        if nxt is None:
            return items, True
        items.append(nxt)
    return items, False


class _Stop(Exception):
    """Another stage of the pipeline failed."""


def _run_pipelined(
    total: int,
    read: Callable[[int], _Item],
    infer: Callable[[list[_Item]], None],
    overlay: Callable[[_Item], None],
    log: Callable[[list[_Item], Any], None],
    open_log: Callable[[], Any],
    max_batch: int,
) -> int:
    # Queues just deep enough for one batch: deeper ones only add waiting to each part's latency.
    decoded: queue.Queue[_Item | None] = queue.Queue(maxsize=max_batch)
    inferred: queue.Queue[_Item | None] = queue.Queue(maxsize=max_batch)
    shown: queue.Queue[_Item | None] = queue.Queue(maxsize=max_batch)
    failed = threading.Event()
    errors: list[BaseException] = []
    rows: list[int] = []

    def put(q: queue.Queue[_Item | None], item: _Item | None) -> None:
        while True:
            if failed.is_set():
                raise _Stop
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(q: queue.Queue[_Item | None]) -> _Item | None:
        while True:
            if failed.is_set():
                raise _Stop
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except _Stop:
                pass
            except BaseException as exc:
                errors.append(exc)
                failed.set()

        return run

    def reader() -> None:
        for index in range(total):
            put(decoded, read(index))
        put(decoded, None)

    def painter() -> None:
        while (item := get(inferred)) is not None:
            overlay(item)
            put(shown, item)
        put(shown, None)

    def writer() -> None:
        # The log is made on the thread that writes it.
        with open_log() as visual_log:
            finished = False
            while not finished and (item := get(shown)) is not None:
                # What is already waiting, up to what the station's writer commits at once.
                items, finished = _with_waiting(shown, item, 32)
                log(items, visual_log)
            rows.append(int(visual_log.count()))

    def inference() -> None:
        finished = False
        while not finished:
            first = get(decoded)
            if first is None:
                break
            # Batch what is already waiting; never wait for more.
            items, finished = _with_waiting(decoded, first, max_batch)
            infer(items)
            for item in items:
                put(inferred, item)
        put(inferred, None)

    threads = [
        threading.Thread(target=guarded(reader), name="bench-reader", daemon=True),
        threading.Thread(target=guarded(painter), name="bench-overlay", daemon=True),
        threading.Thread(target=guarded(writer), name="bench-writer", daemon=True),
    ]
    for t in threads:
        t.start()
    guarded(inference)()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return rows[0]


# ---------------------------------------------------------------------------------------- output


def format_report(report: BenchReport) -> str:
    lines = [
        f"{report.model} ({report.architecture}, {report.input_size} px"
        + (f", {report.views} views" if report.views > 1 else "")
        + f")  backend {report.backend}  "
        f"device {report.device}  threads {report.threads}  {report.mode}"
        + (f" (batches up to {report.max_batch})" if report.mode == "pipelined" else "")
        + (f", parts fed at {report.rate_hz:g}/s" if report.rate_hz else ", parts fed flat out"),
        f"{report.parts} parts from {report.images} images in {report.wall_s:.1f} s: "
        f"{report.parts_per_s:.1f} parts/s   CPU {report.cpu_ms_per_part:.1f} ms/part   "
        f"rows logged: {report.rows_logged}   " + ", ".join(f"{k}: {v}" for k, v in report.verdicts.items()),
        f"{'stage':<12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}  what",
    ]
    for name, stats in [*report.stages.items(), ("end to end", report.end_to_end)]:
        lines.append(
            f"{name:<12}{stats.p50_ms:9.2f}{stats.p95_ms:9.2f}{stats.p99_ms:9.2f}{stats.mean_ms:9.2f}  "
            + STAGE_HELP.get(name, "decode start to committed row (queue waits included)")
        )
    if report.memory:
        first, last = report.memory[0], report.memory[-1]
        growth = "n/a" if report.rss_growth_mb is None else f"{report.rss_growth_mb:+.1f} MB"
        lines.append(
            f"memory: RSS {first.rss_mb:.0f} MB after {first.parts} parts, {last.rss_mb:.0f} MB after "
            f"{last.parts}; growth after the first tenth {growth}; peak {report.peak_rss_mb} MB"
        )
        if len(report.memory) > 2:
            lines.append(
                "  RSS MB by parts: "
                + "  ".join(f"{m.parts}:{m.rss_mb:.0f}" for m in _thin(report.memory, 12))
            )
    lines.append(f"load average (1 min) before/after: {report.load_average[0]} / {report.load_average[1]}")
    return "\n".join(lines)


def _thin(samples: Sequence[MemorySample], n: int) -> list[MemorySample]:
    if len(samples) <= n:
        return list(samples)
    picks = np.linspace(0, len(samples) - 1, n).round().astype(int)
    return [samples[i] for i in sorted(set(picks.tolist()))]


def plot_latency(reports: Sequence[BenchReport], path: Path) -> Path:
    """Per-stage and end-to-end latency distributions (CDF, log time axis), one panel per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(reports), figsize=(6.5 * len(reports), 4.2), squeeze=False)
    for ax, report in zip(axes[0], reports, strict=True):
        for name in (*STAGES, "end_to_end"):
            values = np.sort(np.asarray(report.timings_s.get(name, []), dtype=np.float64) * 1000.0)
            if values.size == 0:
                continue
            cdf = np.arange(1, values.size + 1) / values.size
            style = {"linewidth": 2.4, "color": "black"} if name == "end_to_end" else {"linewidth": 1.4}
            ax.plot(values, cdf, label=name.replace("_", " "), **style)
        ax.set_xscale("log")
        ax.set_xlabel("latency per part (ms)")
        ax.set_ylabel("fraction of parts")
        ax.set_title(
            f"{report.architecture} {report.backend}/{report.device}: {report.parts_per_s:.0f} parts/s",
            fontsize=10,
        )
        for q in (0.5, 0.95, 0.99):
            ax.axhline(q, color="grey", linewidth=0.5, linestyle=":")
        ax.grid(True, which="both", linewidth=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
