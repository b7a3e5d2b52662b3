"""Rerun the original notebook's experiments on a data folder and write one comparison table.

Each experiment trains a bundle with ``core.training.fit`` in the seed regime (a seeded sample of
1000 good / 350 bad by default, the rest of the folder held out as the test split) and evaluates
it on that test split with ``core.training.evaluation``. The table compares what the line cares about, in
order: missed defects (FNR, with its 95% upper bound), false rejects (FPR), AUC, latency, size.

    python benchmarks/notebook_experiments.py ../shared/datasets/casting/train --out runs/notebook \\
        [--only grayscale,rgb] [--epochs 20] [--input-size 224]

Experiments (each changes one thing from the baseline, MobileNetV3-Large, grayscale, class
weights, threshold chosen for zero misses on validation, augmentation of both classes):
``grayscale`` (baseline), ``rgb``, ``resnet50``, ``no_weights_threshold_0.5`` (plain loss, argmax),
``class_specific_augmentation`` (the notebook's rotate-good / flip-bad recipe).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

EXPERIMENTS: dict[str, dict[str, object]] = {
    "grayscale": {},
    "rgb": {"channels": 3},
    "resnet50": {"architecture": "resnet50"},
    "no_weights_threshold_0.5": {"bad_weight_factor": 0.0, "fixed_threshold": 0.5},
    "class_specific_augmentation": {"augment_policy": "class_specific"},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", help="comma-separated experiment names")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument(
        "--patience",
        type=int,
        help="epochs without a better model before stopping (default: a third of --epochs, at least 4); "
        "the learning rate is high in the first third of a one-cycle run, so short runs need the whole run",
    )
    parser.add_argument(
        "--sample", default="good=1000,bad=350", help="seed regime sample; 'none' for the full folder"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threshold-rule",
        choices=("margin", "highest"),
        default="margin",
        help="how the zero-miss threshold is placed on validation (see core.training.fit.TrainConfig)",
    )
    args = parser.parse_args(argv)

    from core.training.evaluation import evaluate
    from core.training.fit import TrainConfig, train

    names = args.only.split(",") if args.only else list(EXPERIMENTS)
    sample = (
        None
        if args.sample == "none"
        else {k: int(v) for k, v in (p.split("=") for p in args.sample.split(","))}
    )
    rows = []
    for name in names:
        run = args.out / name
        base = dict(
            name=name, architecture="mobilenet_v3_large", input_size=args.input_size, epochs=args.epochs,
            patience=args.patience or max(4, args.epochs // 3), sample_per_class=sample, val_fraction=0.2,
            test_fraction=0.0 if sample else 0.15, device=args.device, seed=0,
            threshold_rule=args.threshold_rule,
        )  # fmt: skip
        base.update(EXPERIMENTS[name])
        started = time.perf_counter()
        if not (run / "model.json").is_file():
            train(
                TrainConfig.model_validate(base),
                args.data_dir,
                run,
                log=lambda m, n=name: print(f"[{n}] {m}"),
            )
        train_s = time.perf_counter() - started
        report = evaluate(run, args.data_dir, run / "eval-test", split="test")
        op = report["at_chosen_threshold"]
        leak = report.get("leak_check", {})
        rows.append({
            "experiment": name,
            "FNR": f"{op['fnr']:.4f}", "FNR_upper95": f"{op['fnr_upper95']:.4f}", "missed": f"{op['fn']}/{op['fn'] + op['tp']}",
            "FPR": f"{op['fpr']:.4f}", "FPR_upper95": f"{op['fpr_upper95']:.4f}",
            "false_rejects": f"{op['fp']}/{op['fp'] + op['tn']}",
            "AUC": f"{report['roc_auc']:.4f}", "threshold": f"{op['threshold']:.4f}",
            "latency_ms": f"{report['latency_ms_per_image']['median']:.2f}",
            "size_MB": f"{report['model']['size_bytes'] / 1e6:.1f}",
            "leak_check": "passed" if leak.get("passed") else ("FAILED" if leak else "-"),
            "train_s": f"{train_s:.0f}",
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "comparison.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    header = "| " + " | ".join(rows[0]) + " |"
    table = [header, "|" + "---|" * len(rows[0])] + ["| " + " | ".join(r.values()) + " |" for r in rows]
    (args.out / "comparison.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
