"""Commands of the training side: ``train`` and ``evaluate``.

The flags of ``train`` are made from ``TrainConfig``'s fields (see ``core.cli.flags``): a new
setting of the training configuration is a new flag, with its description as the help text.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.flags import add_model_flags, given_settings
from core.common.errors import UserError, user_errors

if TYPE_CHECKING:
    from core.training.fit import TrainConfig

# Fields that are not settings of a run: the version of the file format.
NOT_FLAGS = frozenset({"schema_version"})


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``train`` and ``evaluate`` to the ``inspector`` parser."""
    from core.model.architectures import ARCHITECTURES  # names only: torch comes with a net
    from core.training.fit import TrainConfig

    p = sub.add_parser("train", help="train a model bundle from a folder of class folders")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="run folder; the bundle is written here")
    p.add_argument("--config", type=Path, help="JSON file of training settings (flags override it)")
    fields = add_model_flags(
        p,
        TrainConfig,
        exclude=NOT_FLAGS,
        extras={
            "architecture": {"aliases": ("--arch",), "choices": ARCHITECTURES, "metavar": "NAME"},
            "name": {"help": "name of the model bundle (default: the name of the --out folder)"},
        },
    )
    p.set_defaults(handler=_cmd_train, config_fields=tuple(fields))

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

    p = sub.add_parser(
        "fit-anomaly",
        help="add the good-only second opinion to a bundle trained without it (from its run's split.json)",
    )
    p.add_argument("model", type=Path, help="model bundle folder (a run folder of inspector train)")
    p.add_argument("--dims", type=int, default=128, help="feature channels kept per cell (default: 128)")
    p.add_argument(
        "--budget",
        type=float,
        default=0.01,
        help="false-reject budget on validation good parts (default: 0.01)",
    )
    p.add_argument("--threads", type=int, help="CPU threads for torch; default: all cores")
    p.set_defaults(handler=_cmd_fit_anomaly)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The run's ``TrainConfig``: the ``--config`` file, then the flags given over it."""
    from core.training.fit import TrainConfig

    settings: dict[str, object] = {}
    if args.config:
        with user_errors(json.JSONDecodeError):
            loaded = json.loads(args.config.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise UserError(f"{args.config}: the settings file must hold one JSON object")
        settings.update(loaded)
    settings.update(given_settings(args, args.config_fields))
    settings.setdefault("name", args.out.name)
    return TrainConfig.model_validate(settings)


def _cmd_train(args: argparse.Namespace) -> int:
    from core.common.progress import ProgressBars
    from core.training.fit import train

    config = train_config(args)
    bars = ProgressBars()

    def say(message: str) -> None:
        bars.close()  # a line of its own, not inside a progress bar
        print(message)

    try:
        # What the folder holds against what was asked (class map, sample sizes, split file) is
        # only known once it is scanned: those checks raise ValueError and are the user's to fix.
        with user_errors(ValueError):
            card = train(
                config,
                args.data_dir,
                args.out,
                progress=bars,
                log=say,
            )
    finally:
        bars.close()
    print(f"model bundle: {args.out} (threshold {card.threshold:.4f}, weights {card.short_hash})")
    return 0


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
        # A split the manifest lacks or whose images changed is the user's to fix.
        with user_errors(ValueError):
            evaluate(args.model, args.data_dir, out, split=args.split, leak_check=not args.no_leak_check,
                     progress=bars)  # fmt: skip
    finally:
        bars.close()
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"report: {out}")
    return 0


def _cmd_fit_anomaly(args: argparse.Namespace) -> int:
    from core.model.bundle import BundleError
    from core.training.anomaly_fit import add_to_bundle

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with user_errors(ValueError, BundleError):
        card = add_to_bundle(args.model, dims=args.dims, budget=args.budget)
    print(
        f"{args.model}: anomaly threshold {card.threshold:.4g}; the card changed (a new model hash): "
        f"export it again with `inspector export {args.model} --onnx` before running it on ONNX Runtime"
    )
    return 0
