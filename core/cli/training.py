"""CLI commands of the training side: ``inspector evaluate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate a model bundle on labelled images; writes a report with figures"
    )
    p.add_argument("model", type=Path, help="model bundle folder")
    p.add_argument("data_dir", type=Path, help="folder of class folders (the one the model was trained from)")
    p.add_argument("--out", type=Path, help="report folder (default: MODEL/eval-SPLIT)")
    p.add_argument(
        "--split", default="test", help="split of the bundle's manifest to use, or 'all' (default: test)"
    )
    p.add_argument("--no-leak-check", action="store_true", help="skip the augmentation leak check")
    p.set_defaults(handler=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from core.common.progress import ProgressBars
    from core.inference.onnx_bundle import has_onnx
    from core.training.evaluation import evaluate

    out = args.out or args.model / f"eval-{args.split}"
    if not has_onnx(args.model):
        # Measured on the casting test split (5,283 parts, 8 views, 2 cores): 222 ms per part with
        # PyTorch, 29 ms with ONNX Runtime.
        print(
            f"note: no ONNX export in {args.model}: evaluating with PyTorch, several times slower on a "
            f"CPU (8x with 8 views) than after `inspector export {args.model} --onnx`",
            file=sys.stderr,
        )
    bars = ProgressBars()
    try:
        report = evaluate(args.model, args.data_dir, out, split=args.split, leak_check=not args.no_leak_check,
                          progress=bars)  # fmt: skip
    finally:
        bars.close()
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"report: {out}")
    del report
    return 0
