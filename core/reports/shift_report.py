"""Shift reports: one CSV line per part, and a summary CSV, for one station and one shift.

The files are deterministic (the same log gives the same bytes: no "generated at", fixed number
formats, rows in time order), UTF-8 with a byte-order mark so that spreadsheet programs read the
accents in file names right, and safe to open in a spreadsheet: a cell that begins with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return gets a leading apostrophe, so it is shown as text
and never run as a formula.

The summary ends with the chain head at the end of the shift and whether the chain verifies up
to it: a printed head proves later that no record of the shift (or before it) was edited or
removed.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.common.types import Verdict
from core.reports.shifts import Shift
from core.storage import VisualLog
from core.storage.records import ChainHead, ChainVerification, DecisionRecord, ReviewOutcome

PART_COLUMNS = (
    "part_id",
    "time",
    "source",
    "score",
    "threshold",
    "verdict",
    "status",
    "review",
    "reviewed_by",
    "model",
    "image",  # relative to the station's media root
    "heatmap",  # the map of the check that fired (the anomaly map when only it did)
    # The good-only second opinion (issue 20); empty for parts judged by the classifier alone.
    "anomaly_score",
    "anomaly_threshold",
    "fired",  # classifier, anomaly or both; empty for a good part, or without a second opinion
)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShiftReport:
    parts_csv: Path
    summary_csv: Path
    summary: dict[str, str]
    head: ChainHead
    verification: ChainVerification | None


def safe_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: formulas and their look-alikes are neutralised."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _local(moment: datetime, shift: Shift) -> str:
    return moment.astimezone(shift.zone).isoformat(timespec="milliseconds")


def _model(record: DecisionRecord) -> str:
    model_hash = record.decision.model_hash
    if model_hash is None:
        return ""
    return f"{record.model_name} ({model_hash[:12]})" if record.model_name else model_hash[:12]


def report_files(out_dir: Path, station: str, shift: Shift) -> tuple[Path, Path]:
    stem = "_".join(
        _UNSAFE_FILE_CHARS.sub("_", part) for part in (station, shift.day.isoformat(), shift.name)
    )
    return out_dir / f"{stem}_parts.csv", out_dir / f"{stem}_summary.csv"


def write_shift_report(log: VisualLog, shift: Shift, out_dir: Path, *, verify: bool = True) -> ShiftReport:
    """Write the two CSV files of one shift of ``log``'s station into ``out_dir``.

    Args:
        log: The station's visual log.
        shift: The shift (see ``ShiftPlan.resolve``).
        out_dir: Folder for the files (created); existing files of the same shift are replaced.
        verify: Walk the hash chain up to the shift's head and put the result in the summary
            (seconds on a log of a million records).

    Returns:
        The paths, the summary as written, and the chain head.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    parts_path, summary_path = report_files(out_dir, log.station, shift)

    verdicts: Counter[Verdict] = Counter()
    final: Counter[Verdict] = Counter()
    outcomes: Counter[tuple[str, str]] = Counter()  # (model verdict, review verdict) of overrides
    confirmed = reviewed = 0
    thresholds: Counter[str] = Counter()
    models: Counter[str] = Counter()
    latencies: list[float] = []
    fired: Counter[str] = Counter()  # which check called the bad parts bad

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(PART_COLUMNS)
    for record in log.records(shift.start, shift.end):
        d = record.decision
        review = record.review
        verdicts[d.verdict] += 1
        final[review.verdict if review else d.verdict] += 1
        if review is not None:
            reviewed += 1
            if review.outcome is ReviewOutcome.CONFIRMED:
                confirmed += 1
            else:
                outcomes[(d.verdict.value, review.verdict.value)] += 1
        if d.threshold is not None:
            thresholds[_number(d.threshold)] += 1
        if d.model_hash is not None:
            models[_model(record)] += 1
        if d.latency_ms is not None:
            latencies.append(d.latency_ms)
        if d.fired:
            fired[d.fired] += 1
        status = "inspected" if d.verdict is not Verdict.NOT_INSPECTED else f"not inspected: {d.reason}"
        review_text = ""
        if review is not None:
            review_text = (
                "confirmed"
                if review.outcome is ReviewOutcome.CONFIRMED
                else f"overridden: {review.verdict.value}"
            )
        writer.writerow(
            [
                safe_cell(value)
                for value in (
                    d.part_id,
                    _local(d.created_at, shift),
                    d.source_ref,
                    _number(d.score),
                    _number(d.threshold),
                    d.verdict.value,
                    status,
                    review_text,
                    review.user if review else "",
                    _model(record),
                    d.image_path or "",
                    d.heatmap_path or "",
                    _number(d.anomaly_score),
                    _number(d.anomaly_threshold),
                    d.fired or "",
                )
            ]
        )
    _write_atomic_text(parts_path, buffer.getvalue())

    parts = sum(verdicts.values())
    good, bad, skipped = verdicts[Verdict.GOOD], verdicts[Verdict.BAD], verdicts[Verdict.NOT_INSPECTED]
    overridden = sum(outcomes.values())
    changes = log.threshold_changes(since=shift.start, until=shift.end)
    before = log.threshold_changes(until=shift.start)
    head = log.chain_head_before(shift.end)
    verification = log.verify(until_seq=head.seq) if verify else None

    summary: dict[str, str] = {
        "station": log.station,
        "shift": shift.name,
        "shift_day": shift.day.isoformat(),
        "start": _local(shift.start, shift),
        "end": _local(shift.end, shift),
        "parts": str(parts),
        "good": str(good),
        "bad": str(bad),
        "not_inspected": str(skipped),
        "yield": _ratio(good, parts),
        "reviewed": str(reviewed),
        "confirmed": str(confirmed),
        "overridden": str(overridden),
        # A miss: the model passed a part a supervisor found bad. A false reject: the reverse.
        "misses": str(outcomes[(Verdict.GOOD.value, Verdict.BAD.value)]),
        "false_rejects": str(outcomes[(Verdict.BAD.value, Verdict.GOOD.value)]),
        "not_inspected_reviewed": str(
            sum(n for (model, _), n in outcomes.items() if model == Verdict.NOT_INSPECTED.value)
        ),
        "good_after_review": str(final[Verdict.GOOD]),
        "yield_after_review": _ratio(final[Verdict.GOOD], parts),
        "threshold_at_start": _number(before[-1].new) if before else "",
        "thresholds_in_force": "; ".join(f"{t} ({n} parts)" for t, n in sorted(thresholds.items())),
        "threshold_changes": str(len(changes)),
        "models_in_force": "; ".join(f"{m}: {n} parts" for m, n in sorted(models.items())),
        "mean_latency_ms": f"{sum(latencies) / len(latencies):.2f}" if latencies else "",
        # Bad parts by the check that called them bad: "anomaly" are those only the good-only model caught.
        "bad_by_classifier": str(fired["classifier"]),
        "bad_by_anomaly": str(fired["anomaly"]),
        "bad_by_both": str(fired["both"]),
    }
    for number, change in enumerate(changes, start=1):
        old = _number(change.old) or "none"
        summary[f"threshold_change_{number}"] = (
            f"{_local(change.created_at, shift)} {change.user}: {old} -> {_number(change.new)} ({change.reason})"
        )
    summary["chain_head_seq"] = str(head.seq)
    summary["chain_head_hash"] = head.hash
    if verification is None:
        summary["chain_verified"] = "not checked"
    elif verification.ok:
        summary["chain_verified"] = (
            f"ok: records 1 to {head.seq} intact ({verification.pruned} removed by retention, as recorded)"
        )
    else:
        summary["chain_verified"] = f"BROKEN at record {verification.broken_at}: {verification.problem}"

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(("item", "value"))
    for key, value in summary.items():
        writer.writerow((key, safe_cell(value)))
    _write_atomic_text(summary_path, buffer.getvalue())
    return ShiftReport(
        parts_csv=parts_path, summary_csv=summary_path, summary=summary, head=head, verification=verification
    )


def _ratio(part: int, whole: int) -> str:
    return f"{part / whole:.4f}" if whole else ""


def _write_atomic_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".part")
    with open(partial, "w", encoding="utf-8-sig", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)
