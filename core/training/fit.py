"""Training a model bundle: ``train`` runs the epochs, keeps the best, chooses the threshold, writes the run.

Weighted loss, selection on the false-reject rate at the target miss rate, threshold chosen on
validation. The epoch functions live in ``core.training.epochs``, the configuration in
``core.training.config``; ``TrainConfig`` is re-exported here because it is what callers of
``train`` build.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.common.fileio import write_atomic
from core.common.metrics import (
    rates_at,
    threshold_for_miss_rate,
    threshold_spending_budget,
    threshold_with_margin,
)
from core.imaging.preprocess import Preset
from core.model.architectures import build_model
from core.model.bundle import ModelCard, save_bundle
from core.training.augment import good_only_loss_labels, good_only_validation
from core.training.config import TrainConfig, choose_samples
from core.training.data import check_manifest_images, data_hash, read_manifest, scan_folder, write_manifest
from core.training.epochs import (
    EPOCH_COLUMNS,
    EpochResult,
    ProgressFn,
    epoch_row,
    evaluate_scores,
    load_images,
    make_loss,
    selection_key,
    train_one_epoch,
    view_scores,
)
from core.training.schedule import epochs_within, may_stop_early, one_cycle

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["TrainConfig", "choose_threshold", "start_from_bundle", "train"]


def start_from_bundle(net: nn.Module, bundle: Path, config: TrainConfig) -> ModelCard:
    """Load a bundle's weights into a freshly built net of the same architecture and channels.

    Returns:
        The bundle's card (its weights hash goes into the run's log).

    Raises:
        BundleError: the bundle is not one, its weights do not match its card, or it holds
            another architecture or number of channels.
    """
    from core.model.bundle import BundleError, load_weights_into, read_card

    card = read_card(bundle)
    if (card.architecture, card.channels) != (config.architecture, config.channels):
        raise BundleError(
            f"{bundle}: it holds a {card.architecture} with {card.channels} channel(s); this run trains a "
            f"{config.architecture} with {config.channels}. Choose the same architecture and channels to start "
            "from it."
        )
    load_weights_into(net, bundle, card)
    return card


def choose_threshold(config: TrainConfig, labels: np.ndarray, scores: np.ndarray) -> float:
    """The bundle's threshold from the validation scores, by the config's rule.

    Args:
        config: ``fixed_threshold`` wins when set; otherwise ``threshold_rule`` with
            ``target_miss_rate``: "highest" sits on the weakest validation defect it must catch,
            "margin" moves into the middle of the gap below it; then lowered further to spend
            ``false_reject_budget`` on validation good parts (``threshold_spending_budget``).
        labels: Validation labels (1 = bad).
        scores: Validation scores, as the station will compute them (over the bundle's views).

    Returns:
        The threshold, 0..1.
    """
    if config.fixed_threshold is not None:
        return config.fixed_threshold
    return threshold_spending_budget(
        labels, scores, rule_threshold(config, labels, scores), config.false_reject_budget
    )


def rule_threshold(config: TrainConfig, labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold of ``threshold_rule`` and ``target_miss_rate`` alone, before any budget is spent."""
    rule = threshold_with_margin if config.threshold_rule == "margin" else threshold_for_miss_rate
    return rule(labels, scores, config.target_miss_rate)


def _build_net(config: TrainConfig) -> nn.Module:
    """The run's fresh net; a ``pretrained`` file that cannot be used is the user's to fix.

    Raises:
        ValueError: The ``pretrained`` file holds more than tensors (Python objects or code,
            which weights-only loading refuses to run) or weights of another architecture.
        FileNotFoundError: There is no ``pretrained`` file.
    """
    import pickle

    try:
        return build_model(
            config.architecture,
            channels=config.channels,
            pretrained=config.pretrained,
            pooling=config.pooling,
        )
    except pickle.UnpicklingError as exc:
        if not config.pretrained:
            raise
        found = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line), "")
        raise ValueError(
            f"pretrained weights {config.pretrained}: refused, the file holds more than a state dict of "
            f"tensors {f'({found}) ' if found else ''}and it is loaded with weights only, so nothing in it "
            "runs; save the weights with torch.save(model.state_dict(), path)"
        ) from exc
    except RuntimeError as exc:
        if not config.pretrained:
            raise
        raise ValueError(
            f"pretrained weights {config.pretrained}: they do not fit a {config.architecture}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc


def _distributed(device: str) -> tuple[int, int, str]:
    """(rank, world size, device) under ``torchrun``; (0, 1, device) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return dist.get_rank(), world, device


# Below this validation AUC the run is reported as having learnt nothing (0.5 is chance).
UNLEARNT_AUC = 0.6


def train(
    config: TrainConfig,
    data_dir: Path,
    out_dir: Path,
    *,
    progress: ProgressFn | None = None,
    log: Callable[[str], None] = print,
) -> ModelCard:
    """Train a model bundle from a folder of labelled images.

    Writes into ``out_dir``: ``config.json`` (resolved), ``split.json`` (the manifest),
    ``epochs.csv``, ``metrics.json`` and the bundle files of the best epoch. Under ``torchrun``
    the same call trains with DistributedDataParallel; process 0 evaluates and writes.
    """
    import torch

    from core.common.metrics import roc_auc
    from core.model.bundle import read_card
    from core.model.device import pick_device

    if config.threads:
        torch.set_num_threads(config.threads)
    rank, world, device = _distributed(pick_device(config.device))
    main_process = rank == 0
    if not main_process:
        progress, log = None, (lambda _m: None)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    aug_rng = np.random.default_rng([config.seed, rank])
    if main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(out_dir / "config.json", (config.model_dump_json(indent=2) + "\n").encode())

    if config.split_from:
        splits = read_manifest(Path(config.split_from), Path(data_dir))
        check_manifest_images(splits, ("train", "val"), Path(config.split_from), Path(data_dir))
    else:
        splits = choose_samples(
            config, scan_folder(data_dir, config.class_map, good_only=config.synthetic_spots > 0)
        )
    if main_process:
        write_manifest(out_dir / "split.json", splits, Path(data_dir))
    preset = Preset(
        input_size=config.input_size, channels=config.channels, normalisation=config.normalisation
    )
    counts = ", ".join(
        f"{k} {sum(s.label == 0 for s in v)} good / {sum(s.label for s in v)} bad" for k, v in splits.items()
    )
    log(
        f"{sum(map(len, splits.values()))} images: {counts}; device {device}"
        + (f" x {world} processes" if world > 1 else "")
    )
    train_x = load_images(splits["train"], preset, progress, size=config.augment_size)
    train_y = np.array([s.label for s in splits["train"]], dtype=np.int64)
    val_x = load_images(splits["val"], preset, progress) if main_process else train_x[:0]
    val_y = np.array([s.label for s in splits["val"]], dtype=np.int64)
    good_only = not train_y.any()
    if good_only:
        # No defect to learn from: the pits of --synthetic-spots are the only bad parts, in
        # training and (on copies of the validation good parts) in validation.
        if config.synthetic_spots <= 0:
            raise ValueError(
                "the training images hold no bad part: give some, or train on good parts alone with "
                "--synthetic-spots 0.5 (synthetic pits stand in for the defects) and --anomaly"
            )
        val_x, val_y = good_only_validation(val_x, val_y, config.seed)
        log(
            f"no bad image: trained against synthetic pits on {config.synthetic_spots:.0%} of the good "
            f"parts, validated on the {len(val_y) - int(val_y.sum())} validation good parts and a pitted copy of each"
        )

    net = _build_net(config)
    if config.init_from:
        start = start_from_bundle(net, Path(config.init_from), config)
        log(f"starting from the weights of {config.init_from} ({start.short_hash})")
    net = net.to(device)
    model: nn.Module = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[device] if device.startswith("cuda") else None)
    weight_labels = good_only_loss_labels(train_y, config.synthetic_spots) if good_only else train_y
    loss_fn = make_loss(weight_labels, config.bad_weight_factor, device, gamma=config.focal_gamma)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(train_x) // (config.batch_size * world) + 1)
    epochs = config.epochs  # the time budget may fit fewer after the first epoch (schedule.py)
    scheduler = one_cycle(optimiser, config.lr, steps_per_epoch, epochs)

    augment_threads = config.augment_threads
    if augment_threads is None:
        augment_threads = min(8, os.cpu_count() or 1) if device.startswith("cuda") else 0

    best: EpochResult | None = None
    best_state: dict[str, torch.Tensor] | None = None
    history: list[EpochResult] = []
    stale = 0
    csv_file = open(out_dir / "epochs.csv", "w", newline="", encoding="utf-8") if main_process else None  # noqa: SIM115
    writer = csv.writer(csv_file) if csv_file else None
    if writer:
        writer.writerow(EPOCH_COLUMNS)
    try:
        epoch = 0
        while epoch < epochs:
            epoch += 1
            started = time.perf_counter()
            train_loss = train_one_epoch(
                model, train_x, train_y, preset=preset, loss_fn=loss_fn, optimiser=optimiser,
                scheduler=scheduler, batch_size=config.batch_size, rng=rng, do_augment=config.augment,
                device=device, progress=progress, aug_rng=aug_rng, shard=(rank, world),
                policy=config.augment_policy, scale_jitter=config.scale_jitter,
                synthetic_spots=config.synthetic_spots, threads=augment_threads,
            )  # fmt: skip
            stop = False
            if main_process:
                probs, logits = evaluate_scores(net, val_x, preset=preset, device=device)
                with torch.no_grad():
                    val_loss = float(
                        loss_fn(torch.from_numpy(logits).to(device), torch.from_numpy(val_y).to(device))
                    )
                fnr, fpr = rates_at(val_y, probs, 0.5)
                _, fpr_target = rates_at(
                    val_y, probs, threshold_for_miss_rate(val_y, probs, config.target_miss_rate)
                )
                result = EpochResult(
                    epoch, train_loss, val_loss, fnr, fpr, roc_auc(val_y, probs), fpr_target,
                    time.perf_counter() - started,
                )  # fmt: skip
                history.append(result)
                assert writer is not None and csv_file is not None
                writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in epoch_row(result)])
                csv_file.flush()
                log(
                    f"epoch {epoch}/{epochs}: loss {train_loss:.4f} val loss {val_loss:.4f} "
                    f"FNR@0.5 {fnr:.3f} FPR@0.5 {fpr:.3f} FPR@target {fpr_target:.3f} "
                    f"AUC {result.val_auc:.4f} ({result.seconds:.1f} s)"
                )
                if best is None or selection_key(result) < selection_key(best):
                    best, stale = result, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
                    if stale >= config.patience and may_stop_early(epoch, epochs):
                        log(f"no better epoch for {config.patience} epochs: stopping")
                        stop = True
                spent = sum(r.seconds for r in history)
                limit = config.max_minutes * 60 if config.max_minutes else float("inf")
                # An epoch past the limit already stops below, as it always did.
                fit = epochs_within(limit, spent, epochs) if config.max_minutes else epochs
                if epoch == 1 and spent <= limit and fit < epochs:
                    log(
                        f"{fit} epoch(s) of {spent:.0f} s fit in {config.max_minutes:g} min: the schedule "
                        f"is fitted to {fit} epochs instead of {epochs}"
                    )
                    epochs = fit
                    scheduler = one_cycle(
                        optimiser, config.lr, steps_per_epoch, epochs, steps_done=scheduler.last_epoch
                    )
                # The limit still holds when later epochs run slower than the first.
                if not stop and spent > limit and epoch < epochs:
                    log(
                        f"{spent / 60:.1f} min of training, past the limit of {config.max_minutes:g} min: stopping"
                    )
                    stop = True
            if world > 1:
                import torch.distributed as dist

                # Every process follows process 0's stop and the epochs its time budget fitted.
                flag = torch.tensor([1.0 if stop else 0.0, float(epochs)])
                dist.broadcast(flag, src=0)
                stop = bool(flag[0].item())
                if int(flag[1].item()) != epochs:
                    epochs = int(flag[1].item())
                    scheduler = one_cycle(
                        optimiser, config.lr, steps_per_epoch, epochs, steps_done=scheduler.last_epoch
                    )
            if stop:
                break
    finally:
        if csv_file:
            csv_file.close()

    if not main_process:
        import torch.distributed as dist

        dist.barrier()
        return read_card(out_dir)
    assert best is not None and best_state is not None
    net.load_state_dict(best_state)
    probs = view_scores(net, val_x, preset=preset, device=device, views=config.views)
    threshold = choose_threshold(config, val_y, probs)
    of_rule = rule_threshold(config, val_y, probs)
    fnr, fpr = rates_at(val_y, probs, threshold)
    val_auc_views = roc_auc(val_y, probs)
    metrics = {
        "best_epoch": best.epoch,
        "val_auc": best.val_auc,
        "views": config.views,
        "val_auc_over_views": val_auc_views,
        "threshold_rule": config.threshold_rule if config.fixed_threshold is None else "fixed",
        "threshold_false_reject_budget": config.false_reject_budget if config.fixed_threshold is None else 0.0,
        "threshold_of_rule": of_rule,
        "threshold_highest": threshold_for_miss_rate(val_y, probs, config.target_miss_rate),
        "val_fnr_at_threshold": fnr,
        "val_fpr_at_threshold": fpr,
        "val_fnr_at_0.5": best.val_fnr,
        "val_fpr_at_0.5": best.val_fpr,
        "val_counts": {"good": int((val_y == 0).sum()), "bad": int((val_y == 1).sum())},
        # Every validation score (as the threshold saw it), so that a supervisor's what-if shows
        # the bundle's figures at any threshold and warns before a validation defect is missed.
        "val_scores": {
            "good": sorted(round(float(p), 6) for p in probs[val_y == 0]),
            "bad": sorted(round(float(p), 6) for p in probs[val_y == 1]),
        },
        "train_counts": {"good": int((train_y == 0).sum()), "bad": int((train_y == 1).sum())},
        # Trained on good parts alone: the validation defects are pitted copies of good parts.
        "good_only": good_only,
        "epochs_run": len(history),
        "epochs_planned": config.epochs,
        "epochs_scheduled": epochs,
        "final_lr": float(optimiser.param_groups[0]["lr"]),
        "train_seconds": round(sum(r.seconds for r in history), 1),
        "device": device,
        "processes": world,
    }
    lowered = (
        f" (the rule's {of_rule:.4f}, lowered to spend the {config.false_reject_budget:.1%} false-reject budget "
        "on catching weaker defects)"
        if config.fixed_threshold is None and threshold < of_rule
        else ""
    )
    log(f"best epoch {best.epoch}; threshold {threshold:.4f}{lowered}: val FNR {fnr:.3f}, FPR {fpr:.3f}")
    if val_auc_views < UNLEARNT_AUC:
        log(
            f"WARNING: the classifier did not learn to tell validation defects from good parts (AUC "
            f"{val_auc_views:.2f}; 0.5 is chance): do not put this model on a line"
            + (
                ". The synthetic pits were not learnt, so the features the anomaly model is fitted on are "
                "no better than untrained ones (measured on the casting photographs: docs/results.md)"
                if good_only
                else ""
            )
        )
    anomaly = None
    if config.anomaly:
        from core.training.anomaly_fit import fit_anomaly

        anomaly = fit_anomaly(
            net, architecture=config.architecture, preset=preset, views=config.views,
            good_images=train_x[train_y == 0], val_images=val_x, val_labels=val_y,
            classifier_threshold=threshold, out_dir=out_dir, dims=config.anomaly_dims,
            budget=config.anomaly_budget, seed=config.seed, device=device, log=log,
        )  # fmt: skip
    card = save_bundle(
        net.cpu(),
        out_dir,
        name=config.name,
        architecture=config.architecture,
        input_size=config.input_size,
        channels=config.channels,
        mean=preset.mean,
        std=preset.std,
        normalisation=preset.normalisation,
        threshold=threshold,
        views=config.views,
        pooling=config.pooling,
        training_data_hash=data_hash(splits["train"]),
        metrics=metrics,
        anomaly=anomaly,
    )
    write_atomic(out_dir / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return card
