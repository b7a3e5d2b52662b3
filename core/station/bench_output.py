"""What ``inspector bench`` reports, prints and plots (``core.station.bench`` measures)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("decode", "inference", "log")
STAGE_HELP = {
    "decode": "read and decode the file (measured apart, before the run)",
    "inference": "the Inspector: score and Grad-CAM heatmap (per part of a batch)",
    "log": "record the row: image and heatmap files, database commit (per part of a group commit)",
    "in_station": "taken from the source to committed row and file moved",
    "end_to_end": "file in the inbox to committed row (waiting in the backlog included)",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyStats:
    """Percentiles of one figure over all parts, in milliseconds."""

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
    parts: int  # parts committed when the sample was taken
    rss_mb: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchReport:
    """What one benchmark run of the station measured."""

    model: str
    architecture: str
    input_size: int
    views: int
    # The good-only second opinion ran beside the classifier (the same pass); False: the
    # classifier alone, also for a bundle that has one (to measure what it costs).
    second_opinion: bool
    backend: str
    device: str
    threads: int
    mode: str  # "pipelined" (writer thread, batches) or "serial" (one part at a time)
    rate_hz: float | None  # files published at this rate; None: all at once
    max_batch: int
    images: int  # distinct image files run (each is one part)
    duplicates_skipped: int  # files with the bytes of an earlier one: the station would not log them
    parts: int  # decisions the runtime committed
    wall_s: float  # first file in the inbox to the last committed row
    parts_per_s: float
    # CPU time of the whole process (all threads) per part: what the station costs, however busy
    # the machine was. On an idle machine parts/s can approach cores * 1000 / this.
    cpu_ms_per_part: float
    mean_batch: float  # parts per call of the Inspector
    stages: dict[str, LatencyStats]
    in_station: LatencyStats
    end_to_end: LatencyStats
    verdicts: dict[str, int]
    rows_logged: int  # rows in the log after the run
    files_left_in_inbox: int  # should be 0: every file moved after its row
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


def format_report(report: BenchReport) -> str:
    """The report as text for a terminal."""
    lines = [
        f"{report.model} ({report.architecture}, {report.input_size} px"
        + (f", {report.views} views" if report.views > 1 else "")
        + (", with the second opinion" if report.second_opinion else "")
        + f")  backend {report.backend}  device {report.device}  threads {report.threads}  {report.mode}"
        + (
            f" (batches up to {report.max_batch}, mean {report.mean_batch:g})"
            if report.mode == "pipelined"
            else ""
        )
        + (
            f", files published at {report.rate_hz:g}/s"
            if report.rate_hz
            else ", files published all at once"
        ),
        f"{report.parts} parts in {report.wall_s:.2f} s: {report.parts_per_s:.1f} parts/s   "
        f"CPU {report.cpu_ms_per_part:.1f} ms/part   rows logged: {report.rows_logged}   "
        + ", ".join(f"{k}: {v}" for k, v in report.verdicts.items())
        + (f"   ({report.duplicates_skipped} duplicate files left out)" if report.duplicates_skipped else ""),
        f"{'per part':<12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}  what",
    ]
    figures = [*report.stages.items(), ("in_station", report.in_station), ("end_to_end", report.end_to_end)]
    for name, stats in figures:
        lines.append(
            f"{name.replace('_', ' '):<12}{stats.p50_ms:9.2f}{stats.p95_ms:9.2f}{stats.p99_ms:9.2f}"
            f"{stats.mean_ms:9.2f}  {STAGE_HELP[name]}"
        )
    if report.memory:
        first, last = report.memory[0], report.memory[-1]
        growth = "n/a" if report.rss_growth_mb is None else f"{report.rss_growth_mb:+.1f} MB"
        lines.append(
            f"memory: RSS {first.rss_mb:.0f} MB after {first.parts} parts, {last.rss_mb:.0f} MB after "
            f"{last.parts}; growth after the first tenth {growth}; peak {report.peak_rss_mb} MB"
        )
    elif report.peak_rss_mb is not None:
        lines.append(f"memory: peak RSS {report.peak_rss_mb} MB")
    lines.append(f"load average (1 min) before/after: {report.load_average[0]} / {report.load_average[1]}")
    return "\n".join(lines)


def plot_latency(reports: Sequence[BenchReport], path: Path) -> Path:
    """Per-part latency distributions (CDF, log time axis), one panel per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(reports), figsize=(6.5 * len(reports), 4.2), squeeze=False)
    for ax, report in zip(axes[0], reports, strict=True):
        for name in (*STAGES, "in_station", "end_to_end"):
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
