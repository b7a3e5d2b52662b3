"""Evaluation of a model bundle: the figures that matter on the line, with honest uncertainty.

Writes ``report.json``, ``report.md`` and PNG figures (confusion matrices, ROC and
precision-recall curves, score histogram, the misclassified parts with their heatmaps) into an
output folder. Every miss rate (FNR) and false-reject rate (FPR) comes with its one-sided 95%
Clopper-Pearson upper bound: 0 misses out of n bad parts still allows a miss rate of about 3/n.
``scores.csv`` keeps every image's score, so any other threshold can be read off later.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from core.common.fileio import write_atomic
from core.imaging.decode import DecodeError, read_image
from core.model.bundle import WEIGHTS_FILE, bundle_dir
from core.training.augment import augment
from core.training.data import Sample, check_manifest_images, read_manifest, scan_folder
from core.training.operating import OperatingPoint
from core.training.operating import upper_bound as upper_bound  # re-exported: reports and tests use it here


def select_samples(model: Path, data_dir: Path, split: str) -> tuple[list[Sample], str]:
    """The split of the bundle's manifest when it has one, else every image of the folder.

    Raises:
        ValueError: an image of that split is missing or changed since the manifest was written.
    """
    manifest = bundle_dir(model) / "split.json"
    if split != "all" and manifest.is_file():
        trained_on = manifest_root(manifest)
        splits = read_manifest(manifest, root=data_dir)
        chosen = splits.get(split, [])
        if (
            chosen
            and trained_on is not None
            and not _same_folder(trained_on, data_dir)
            and not any(s.path.is_file() for s in chosen)
        ):
            # Next month's photographs: the manifest's splits name another folder's images.
            return scan_folder(data_dir), (
                f"all images under {data_dir} (not the training folder {trained_on}: the manifest's "
                f"'{split}' split does not apply)"
            )
        if chosen:
            check_manifest_images(splits, (split,), manifest, data_dir)
            return splits[split], f"the '{split}' split of {manifest}"
    return scan_folder(data_dir), f"all images under {data_dir}"


def manifest_root(manifest: Path) -> Path | None:
    """The training folder a manifest records (None when it records none)."""
    root = json.loads(manifest.read_text(encoding="utf-8")).get("root")
    return Path(root) if root else None


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def evaluate(
    model: Path,
    data_dir: Path,
    out_dir: Path,
    *,
    split: str = "test",
    batch_size: int = 32,
    leak_check: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a bundle on labelled images and write the report; returns the report dict."""
    from core.inference.inspector import Inspector

    out_dir.mkdir(parents=True, exist_ok=True)
    inspector = Inspector(model)
    card = inspector.card
    samples, described = select_samples(model, data_dir, split)
    labels, scores, unreadable = [], [], []
    anomaly_scores: list[float] = []
    anomaly_tiles: list[tuple[np.ndarray, np.ndarray, str]] = []  # misses and single catches, with maps
    heatmaps: dict[int, np.ndarray] = {}
    images_kept: dict[int, np.ndarray] = {}
    latencies: list[float] = []
    usable: list[Sample] = []
    for start in range(0, len(samples), batch_size):
        chunk, images = [], []
        for s in samples[start : start + batch_size]:
            try:
                images.append(read_image(s.path))
                chunk.append(s)
            except DecodeError as exc:
                unreadable.append({"path": str(s.path), "reason": str(exc)})
        if not images:
            continue
        t0 = time.perf_counter()
        results = inspector.inspect_batch(images)
        latencies.append((time.perf_counter() - t0) * 1000 / len(images))
        for s, img, r in zip(chunk, images, results, strict=True):
            i = len(usable)
            usable.append(s)
            labels.append(s.label)
            scores.append(r.score)
            wrong = (r.score >= card.threshold) != (s.label == 1)
            if wrong and len(heatmaps) < 48:
                heatmaps[i], images_kept[i] = r.heatmap, img
            if r.anomaly_score is not None and r.anomaly_heatmap is not None:
                anomaly_scores.append(r.anomaly_score)
                fired = r.fired
                note = {None: "MISSED", "anomaly": "only anomaly", "classifier": "only classifier"}
                if s.label == 1 and fired in note and len(anomaly_tiles) < 48:
                    label = f"{note[fired]} {r.score:.2f} / {r.anomaly_score:.3g}"
                    anomaly_tiles.append((img, r.anomaly_heatmap, label))
        if progress:
            progress("evaluate", min(start + batch_size, len(samples)), len(samples))
    y, p = np.array(labels, dtype=np.int64), np.array(scores, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("evaluation needs readable images of both classes")

    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    chosen, half = OperatingPoint.at(y, p, card.threshold), OperatingPoint.at(y, p, 0.5)
    # Hindsight, not a choice: where the threshold would have had to be to catch every defect of
    # this set, and what that would have cost. It shows how far the chosen point is from it.
    catch_all = OperatingPoint.at(y, p, float(p[y == 1].min()))
    # The threshold training's rule gave before the false-reject budget lowered it (when it did).
    of_rule = card.metrics.get("threshold_of_rule")
    before_budget = (
        OperatingPoint.at(y, p, float(of_rule))
        if isinstance(of_rule, int | float) and of_rule > card.threshold
        else None
    )
    fpr_curve, tpr_curve, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    report: dict[str, Any] = {
        "model": {
            "name": card.name, "architecture": card.architecture, "input_size": card.input_size,
            "channels": card.channels, "views": card.views, "normalisation": card.normalisation,
            "weights_sha256": card.weights_sha256,
            "size_bytes": (bundle_dir(model) / WEIGHTS_FILE).stat().st_size,
        },
        "data": {"described": described, "good": int((y == 0).sum()), "bad": int((y == 1).sum()),
                 "unreadable": unreadable},
        "at_chosen_threshold": asdict(chosen),
        "at_0.5": asdict(half),
        **({"at_rule_threshold": asdict(before_budget)} if before_budget else {}),
        "catch_all_in_hindsight": asdict(catch_all),
        "roc_auc": float(roc_auc_score(y, p)),
        "average_precision": float(average_precision_score(y, p)),
        "latency_ms_per_image": {"median": float(np.median(latencies)), "batch_size": batch_size,
                                 "device": inspector.device},
        "misclassified": [
            {"path": str(usable[i].path), "label": "bad" if y[i] else "good", "score": float(p[i])}
            for i in range(len(y)) if (p[i] >= card.threshold) != (y[i] == 1)
        ],
    }  # fmt: skip
    # The scores first: minutes of inference are never lost to a part of the report that fails.
    write_atomic(out_dir / "scores.csv", _scores_csv(usable, y, p))
    problems: list[str] = []
    report["problems"] = problems

    def part(name: str, make: Callable[[], None]) -> None:
        """One optional part of the report; when it fails, the rest is still written."""
        try:
            make()
        except Exception as exc:  # noqa: BLE001 - recorded in the report, never swallowed silently
            problems.append(f"{name} failed: {type(exc).__name__}: {exc}")

    if len(anomaly_scores) == len(p) and inspector.anomaly_threshold is not None:
        a = np.array(anomaly_scores, dtype=np.float64)
        write_atomic(out_dir / "scores.csv", _scores_csv(usable, y, p, a))
        part(
            "second opinion",
            lambda: _second_opinion(out_dir, report, y, p, a, inspector, usable, anomaly_tiles),
        )
    if leak_check:
        part("leak check", lambda: report.update(leak_check=leak_check_report(model, data_dir, inspector)))
    part(
        "figures",
        lambda: _figures(out_dir, y, p, chosen, half, (fpr_curve, tpr_curve), (recall, precision), report),
    )
    part("misclassified gallery", lambda: _gallery(out_dir, usable, y, p, heatmaps, images_kept))
    write_atomic(out_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    write_atomic(out_dir / "report.md", _markdown(report).encode())
    return report


def _scores_csv(usable: list[Sample], y: np.ndarray, p: np.ndarray, a: np.ndarray | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label", "score"] + (["anomaly_score"] if a is not None else []))
    for i, (s, label, score) in enumerate(zip(usable, y, p, strict=True)):
        extra = [repr(float(a[i]))] if a is not None else []
        writer.writerow([str(s.path), "bad" if label else "good", repr(float(score)), *extra])
    return out.getvalue().encode()


def _second_opinion(
    out_dir: Path,
    report: dict[str, Any],
    y: np.ndarray,
    p: np.ndarray,
    a: np.ndarray,
    inspector: Any,
    usable: list[Sample],
    tiles: list[tuple[np.ndarray, np.ndarray, str]],
) -> None:
    """Each opinion alone and combined (``core.training.evaluation_anomaly``)."""
    from core.training.evaluation_anomaly import combined_figures, combined_report, misses_gallery

    section = combined_report(y, p, a, inspector.threshold, inspector.anomaly_threshold, usable)
    report["second_opinion"] = section
    combined_figures(out_dir, y, p, a, section)
    misses_gallery(out_dir, tiles)


def scores_agree(plain: np.ndarray, augmented: np.ndarray, threshold: float, tolerance: float = 0.1) -> bool:
    """Whether augmentation leaves one class's scores alone (see ``leak_check_report``).

    A leak moves the scores themselves (the notebook's recipe on the casting data: good parts
    0.88 -> 0.05 on average). The called-bad rate alone also jumps when the threshold sits on the
    steep part of the score distribution (a model with a zero-miss threshold of 0.015: good parts
    13% -> 25% called bad while their mean score moved 0.023 -> 0.052), so only both moving by
    more than ``tolerance`` counts as disagreement.
    """
    rate_shift = abs(float((plain >= threshold).mean() - (augmented >= threshold).mean()))
    mean_shift = abs(float(plain.mean() - augmented.mean()))
    return rate_shift <= tolerance or mean_shift <= tolerance


def leak_check_report(model: Path, data_dir: Path, inspector: Any, per_class: int = 60) -> dict[str, Any]:
    """Per class, the scores of training images with and without augmentation must agree.

    A transform applied to one class only becomes a shortcut ("rotated means good"); it shows
    as a class whose called-bad rate and mean score both change when its images are augmented.
    """
    manifest = bundle_dir(model) / "split.json"
    # The training images are where the manifest says they were trained from, whatever folder
    # is being evaluated (evaluating next month's photographs must not look them up there).
    samples = read_manifest(manifest).get("train", []) if manifest.is_file() else []
    if not samples:
        return {"skipped": "no training split in the bundle's manifest"}
    missing = sum(not s.path.is_file() for s in samples)
    if missing:  # the training folder moved: the evaluated folder may be it
        moved = read_manifest(manifest, root=data_dir).get("train", [])
        if all(s.path.is_file() for s in moved):
            samples, missing = moved, 0
    if missing:
        return {
            "skipped": f"{missing} of the {len(samples)} training images are not under the training "
            f"folder the manifest records ({manifest_root(manifest)}); the leak check needs them"
        }
    if len({s.label for s in samples}) < 2:
        return {
            "skipped": "the training split holds one class only (a run on good parts alone): no class to favour"
        }
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    threshold = inspector.threshold
    for label, name in ((0, "good"), (1, "bad")):
        chosen = [s for s in samples if s.label == label]
        chosen = [chosen[i] for i in rng.permutation(len(chosen))[:per_class]]
        images = [read_image(s.path) for s in chosen]
        plain = np.array([r.score for r in inspector.inspect_batch(images)])
        augmented = np.array([r.score for r in inspector.inspect_batch([augment(im, rng) for im in images])])
        plain_bad, aug_bad = float((plain >= threshold).mean()), float((augmented >= threshold).mean())
        out[name] = {
            "n": len(images),
            "called_bad_plain": plain_bad,
            "called_bad_augmented": aug_bad,
            "mean_score_plain": float(plain.mean()),
            "mean_score_augmented": float(augmented.mean()),
            "agree": scores_agree(plain, augmented, threshold),
        }
    out["passed"] = all(v["agree"] for v in out.values() if isinstance(v, dict))
    return out


def _figures(out_dir: Path, y: np.ndarray, p: np.ndarray, chosen: OperatingPoint, half: OperatingPoint,
             roc: tuple[np.ndarray, np.ndarray], pr: tuple[np.ndarray, np.ndarray], report: dict[str, Any]) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, op, title in ((axes[0], chosen, "chosen threshold"), (axes[1], half, "threshold 0.5")):
        matrix = np.array([[op.tn, op.fp], [op.fn, op.tp]])
        ax.imshow(matrix, cmap="Blues")
        for (r, c), v in np.ndenumerate(matrix):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=16,
                    color="white" if v > matrix.max() / 2 else "black")  # fmt: skip
        ax.set_xticks([0, 1], ["called good", "called bad"])
        ax.set_yticks([0, 1], ["good", "bad"])
        ax.set_title(
            f"{title} ({op.threshold:.3f})\nFNR {op.fnr:.3f} (≤{op.fnr_upper95:.3f})  FPR {op.fpr:.3f}"
        )
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].plot(*roc, lw=2)
    axes[0].plot([0, 1], [0, 1], "--", color="grey")
    axes[0].set(
        xlabel="false-reject rate", ylabel="detection rate", title=f"ROC (AUC {report['roc_auc']:.4f})"
    )
    axes[1].plot(*pr, lw=2)
    axes[1].set(
        xlabel="recall (bad)", ylabel="precision (bad)", title=f"PR (AP {report['average_precision']:.4f})"
    )
    bins = np.linspace(0, 1, 41)
    axes[2].hist(p[y == 0], bins=bins, alpha=0.6, label="good", color="tab:green")
    axes[2].hist(p[y == 1], bins=bins, alpha=0.6, label="bad", color="tab:red")
    axes[2].axvline(chosen.threshold, color="black", ls="--", label="threshold")
    axes[2].set(xlabel="score (probability of defect)", ylabel="parts", title="scores", yscale="log")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=110)
    plt.close(fig)


def _gallery(out_dir: Path, usable: list[Sample], y: np.ndarray, p: np.ndarray,
             heatmaps: dict[int, np.ndarray], images: dict[int, np.ndarray]) -> None:  # fmt: skip
    import cv2

    from core.imaging.overlay import make_overlay

    if not heatmaps:
        return
    tiles = []
    for i in sorted(heatmaps):
        tile = make_overlay(images[i], heatmaps[i], size=(192, 192))[:, :, ::-1].copy()
        label = f"{'BAD' if y[i] else 'GOOD'} {p[i]:.3f}"
        cv2.putText(tile, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % 6:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + 6]) for i in range(0, len(tiles), 6)]
    cv2.imwrite(str(out_dir / "misclassified.png"), np.vstack(rows))


def _markdown(r: dict[str, Any]) -> str:
    def line(name: str, op: dict[str, Any]) -> str:
        return (
            f"| {name} | {op['threshold']:.4f} | {op['fn']}/{op['fn'] + op['tp']} | {op['fnr']:.4f} "
            f"(≤ {op['fnr_upper95']:.4f}) | {op['fp']}/{op['fp'] + op['tn']} | {op['fpr']:.4f} (≤ {op['fpr_upper95']:.4f}) |"
        )

    m, d = r["model"], r["data"]
    lines = [
        f"# Evaluation of {m['name']} ({m['architecture']}, {m['input_size']} px, {m['channels']} channel(s), "
        f"{m.get('views', 1)} view(s) per part, {m.get('normalisation', 'fixed')} normalisation)",
        "",
        f"Data: {d['described']}: {d['good']} good, {d['bad']} bad, {len(d['unreadable'])} unreadable.",
        "",
        "| operating point | threshold | missed | FNR (95% upper) | false rejects | FPR (95% upper) |",
        "|---|---|---|---|---|---|",
        line("chosen on validation", r["at_chosen_threshold"]),
        *(
            [line("the rule's, before the false-reject budget", r["at_rule_threshold"])]
            if "at_rule_threshold" in r
            else []
        ),
        line("0.5", r["at_0.5"]),
        line("lowest defect score (hindsight)", r["catch_all_in_hindsight"]),
        "",
        f"ROC AUC {r['roc_auc']:.4f}; average precision {r['average_precision']:.4f}.",
        f"Latency {r['latency_ms_per_image']['median']:.2f} ms per image (batch {r['latency_ms_per_image']['batch_size']}, "
        f"{r['latency_ms_per_image']['device']}); weights {m['size_bytes'] / 1e6:.1f} MB.",
        "",
        "The hindsight row is not a choice: it is where the threshold would have had to sit to catch",
        "every defect of this set, and what that costs in false rejects.",
        "",
        "Figures: `confusion.png`, `curves.png`, `misclassified.png`; every score in `scores.csv`.",
    ]
    if "second_opinion" in r:
        from core.training.evaluation_anomaly import markdown_lines

        lines += markdown_lines(r["second_opinion"])
    leak = r.get("leak_check")
    if leak and "skipped" in leak:
        lines += ["", f"Leak check skipped: {leak['skipped']}."]
    for problem in r.get("problems", []):
        lines += ["", f"**Not in this report:** {problem}"]
    if leak and "skipped" not in leak:
        lines += [
            "",
            f"Leak check ({'passed' if leak['passed'] else 'FAILED'}): called-bad rate and mean score, "
            "without / with augmentation:",
        ]
        for name in ("good", "bad"):
            v = leak[name]
            lines.append(
                f"- {name}: {v['called_bad_plain']:.3f} / {v['called_bad_augmented']:.3f}; "
                f"mean {v['mean_score_plain']:.3f} / {v['mean_score_augmented']:.3f} (n = {v['n']})"
            )
    return "\n".join(lines) + "\n"
