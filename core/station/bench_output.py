"""What ``inspector bench`` prints and plots (``core.station.bench`` measures)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from core.station.bench import BenchReport

STAGES = ("decode", "inference", "log")
STAGE_HELP = {
    "decode": "read and decode the file (measured apart, before the run)",
    "inference": "the Inspector: score and Grad-CAM heatmap (per part of a batch)",
    "log": "record the row: image and heatmap files, database commit (per part of a group commit)",
    "in_station": "taken from the source to committed row and file moved",
    "end_to_end": "file in the inbox to committed row (waiting in the backlog included)",
}


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
