"""Training: weighted loss, selection on the miss rate, threshold chosen on validation.

Plain functions (``train_one_epoch``, ``evaluate_scores``) driven by ``train``; the resolved
config and a per-epoch CSV are written into the run folder, and the best epoch becomes a model
bundle (see ``core.model.bundle``).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.common.fileio import write_atomic
from core.common.metrics import rates_at, threshold_for_miss_rate, threshold_with_margin
from core.imaging.decode import read_image
from core.imaging.preprocess import Preset
from core.model.architectures import ARCHITECTURES, build_model
from core.model.bundle import ModelCard, save_bundle
from core.training.augment import add_spots, augment
from core.training.data import (
    DEFAULT_CLASS_MAP,
    Sample,
    check_manifest_images,
    data_hash,
    read_manifest,
    scan_folder,
    stratified_split,
    write_manifest,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

CONFIG_SCHEMA_VERSION = 1


class TrainConfig(BaseModel):
    """Everything a training run depends on; saved, resolved, in the run folder."""

    model_config = ConfigDict(extra="forbid", title="Training configuration")

    schema_version: int = Field(CONFIG_SCHEMA_VERSION, description="Version of this configuration schema.")
    name: str = Field("model", description="Name of the model bundle.")
    architecture: str = Field("mobilenet_v3_large", description=f"One of: {', '.join(ARCHITECTURES)}.")
    input_size: int = Field(224, ge=32, description="Square model input in pixels.")
    channels: int = Field(1, description="1 = grayscale (recommended), 3 = RGB.")
    normalisation: Literal["fixed", "per_image"] = Field(
        "fixed",
        description="'per_image': each image to mean 0 and standard deviation 1, so that brightness and "
        "contrast of the picture say nothing; 'fixed': one mean and standard deviation for all.",
    )
    epochs: int = Field(20, ge=1, description="Maximum number of epochs.")
    patience: int = Field(6, ge=1, description="Stop after this many epochs without a better selection key.")
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="Stop after the first epoch that ends past this many minutes of training; the best epoch "
        "so far becomes the bundle (a run that must end by a set time, on a shared or borrowed machine).",
    )
    batch_size: int = Field(32, ge=1, description="Images per optimisation step.")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate (one-cycle schedule peak).")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay.")
    bad_weight_factor: float = Field(
        2.0,
        ge=0,
        description="Loss weight of bad parts = good_count / bad_count x this factor; 0 disables weighting.",
    )
    focal_gamma: float = Field(
        0.0,
        ge=0,
        le=5,
        description="0: weighted cross-entropy; > 0: weighted focal loss with this gamma (e.g. 2).",
    )
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of each class for validation.")
    test_fraction: float = Field(0.15, ge=0, lt=0.5, description="Share of each class held out for testing.")
    target_miss_rate: float = Field(
        0.0, ge=0, lt=1, description="Miss rate the validation threshold must meet."
    )
    augment: bool = Field(True, description="Class-agnostic rotation, flips, brightness, shift and blur.")
    scale_jitter: float = Field(
        0.0,
        ge=0,
        le=0.3,
        description="Augmentation also zooms by up to this fraction either way (e.g. 0.08).",
    )
    augment_size: int | None = Field(
        None,
        ge=32,
        description="Side in pixels at which training images are held and augmented before they are shrunk "
        "to the input (e.g. the camera's 300); None: at the input size. Rotating and blurring at the input "
        "size smears pits of a pixel or two, so a defect that small is trained as if it were not there.",
    )
    synthetic_spots: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="Share of good training images that get a few small dark pits (core.training.augment.add_spots) "
        "and are then trained as bad: pinholes a small sample shows too rarely. 0 disables.",
    )
    augment_policy: Literal["both", "class_specific"] = Field(
        "both",
        description="'both': the same augmentation for every class. 'class_specific' reproduces the original "
        "notebook (rotate good parts, only flip bad parts) for the comparison benchmark: it is a label leak.",
    )
    threshold_rule: Literal["margin", "highest"] = Field(
        "margin",
        description="'highest': the highest threshold that meets the target miss rate on validation, which "
        "sits on the score of the weakest validation defect. 'margin': the same validation figures, moved to "
        "the middle of the gap below it (see core.common.metrics.threshold_with_margin).",
    )
    fixed_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Use this threshold instead of choosing one on validation (comparisons).",
    )
    seed: int = Field(0, description="Seed of the split, the initial weights and the augmentation.")
    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda.")
    pretrained: str | None = Field(None, description="Local file of ImageNet weights; nothing is downloaded.")
    init_from: str | None = Field(
        None,
        description="A model bundle to start from instead of fresh weights, e.g. the line's model trained "
        "again on a folder that has grown (use a lower lr). Same architecture and channels; its weights "
        "are checked against its card's hash.",
    )
    class_map: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_CLASS_MAP), description="Folder name -> 'good' or 'bad'."
    )
    sample_per_class: dict[str, int] | None = Field(
        None,
        description="Train/validate on a seeded sample, e.g. {'good': 1000, 'bad': 350}; the rest is the test split.",
    )
    split_from: str | None = Field(
        None,
        description="split.json of an earlier run: train and validate on exactly its parts (their images must "
        "be present and unchanged), so that two recipes are compared on the same parts. Overrides the "
        "fractions, seed split and sample_per_class.",
    )
    group_pattern: str | None = Field(
        None, description="Regex on file names; its first group keeps related images in one split."
    )
    threads: int | None = Field(None, description="CPU threads for torch; default: all cores.")
    augment_threads: int | None = Field(
        None,
        ge=0,
        description="Threads that augment the next batch while the current one trains. None: one per core "
        "(at most 8) on a GPU, where augmentation on one core is what an epoch waits for; 0 on the CPU, "
        "whose cores are busy with the network. The batches are the same for any number.",
    )
    pooling: Literal["avg", "max"] = Field(
        "avg",
        description="Global pooling of the last feature map: 'avg', or 'max' so that the one cell holding a "
        "small defect decides instead of being averaged with the rest of the part. Kept in the bundle.",
    )
    views: Literal[1, 4, 8] = Field(
        1,
        description="Views of each part the bundle averages (1; 4 flips; 8 flips of it and its transpose). "
        "Epochs are selected on one view; the threshold is chosen on the views the station will use.",
    )


@dataclass(frozen=True, slots=True)
class EpochResult:
    epoch: int
    train_loss: float
    val_loss: float
    val_fnr: float
    val_fpr: float
    val_auc: float
    val_fpr_at_target: float
    seconds: float


ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


def load_images(
    samples: list[Sample], preset: Preset, progress: ProgressFn | None = None, *, size: int | None = None
) -> np.ndarray:
    """Decode and resize every sample once: N x S x S uint8 (training data lives in memory).

    ``size`` holds them at another side than the input's (see ``TrainConfig.augment_size``); the
    resize is the preset's own filter either way.
    """
    shaper = replace(preset, input_size=size or preset.input_size)
    side = shaper.input_size
    out = np.empty((len(samples), side, side), dtype=np.uint8)
    for i, s in enumerate(samples):
        out[i] = shaper.resize(read_image(s.path))
        if progress:
            progress("load", i + 1, len(samples))
    return out


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


def make_loss(labels: np.ndarray, factor: float, device: str, *, gamma: float = 0.0) -> nn.Module:
    """Class-weighted cross-entropy; with ``gamma`` > 0 the focal loss of Lin et al. (2017).

    The bad class weighs good_count / bad_count x ``factor`` (1 when ``factor`` is 0). The focal
    term (1 - p_true) ** gamma shrinks the loss of parts the model already gets right, so training
    spends itself on the hard ones; gamma 0 is the weighted cross-entropy exactly. Both are the
    weighted mean over the batch, as ``nn.CrossEntropyLoss`` reduces.
    """
    import torch
    from torch import nn

    good, bad = np.bincount(labels, minlength=2)
    bad_weight = (good / max(bad, 1)) * factor if factor > 0 else 1.0
    weight = torch.tensor([1.0, bad_weight], dtype=torch.float32, device=device)
    if gamma == 0:
        return nn.CrossEntropyLoss(weight=weight)

    class FocalLoss(nn.Module):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            log_p = torch.log_softmax(logits.float(), dim=1).gather(1, target[:, None])[:, 0]
            w = weight[target]
            focal = (1.0 - log_p.exp()).clamp(min=0.0) ** gamma
            return -(w * focal * log_p).sum() / w.sum()

    return FocalLoss()


def train_one_epoch(
    net: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    preset: Preset,
    loss_fn: nn.Module,
    optimiser: torch.optim.Optimizer,
    scheduler: Any,
    batch_size: int,
    rng: np.random.Generator,
    do_augment: bool,
    device: str,
    progress: ProgressFn | None = None,
    aug_rng: np.random.Generator | None = None,
    shard: tuple[int, int] = (0, 1),
    policy: str = "both",
    scale_jitter: float = 0.0,
    synthetic_spots: float = 0.0,
    threads: int = 0,
) -> float:
    """One pass over the training images.

    Under DistributedDataParallel every process draws the same order from ``rng`` and takes
    its own equal share (``shard`` = (rank, world size)). Each image's augmentation draws from a
    generator seeded from ``aug_rng`` in batch order, so ``threads`` > 0 (a pool that prepares the
    next batch while the current one trains) gives exactly the batches of ``threads`` = 0.
    """
    import torch

    net.train()
    aug_rng = aug_rng or rng
    order = rng.permutation(len(images))
    rank, world = shard
    if world > 1:
        order = order[: len(order) - len(order) % world][rank::world]
    steps = (len(order) + batch_size - 1) // batch_size
    batches = [idx for s in range(steps) if len(idx := order[s * batch_size : (s + 1) * batch_size]) >= 2]

    def one(i: int, seed: int) -> tuple[np.ndarray, int]:
        draw = np.random.default_rng(seed)
        image, target = images[i], int(labels[i])
        if do_augment:
            image = _augmented(image, target, draw, policy, scale_jitter)
        if synthetic_spots > 0 and target == 0 and draw.random() < synthetic_spots:
            image, target = add_spots(image, draw), 1
        # The full preset: images held larger than the input (``augment_size``) shrink now, after augmentation.
        return preset(image), target

    pool = ThreadPoolExecutor(threads) if threads > 0 else None

    def submit(idx: np.ndarray) -> list[Any]:
        """Futures of the batch's images with a pool; the images themselves without one."""
        jobs = list(zip(idx.tolist(), aug_rng.integers(0, 2**63 - 1, size=len(idx)).tolist(), strict=True))
        return [pool.submit(one, i, seed) for i, seed in jobs] if pool else [one(i, seed) for i, seed in jobs]

    total, seen = 0.0, 0
    try:
        pending = submit(batches[0]) if batches else []
        for step, idx in enumerate(batches):
            prepared = [f.result() for f in pending] if pool else pending
            if step + 1 < len(batches):
                pending = submit(batches[step + 1])  # augmented by the pool while this batch trains
            x = torch.from_numpy(np.stack([p[0] for p in prepared])).to(device)
            y = torch.from_numpy(np.array([p[1] for p in prepared], dtype=np.int64)).to(device)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            if progress:
                progress("train", step + 1, len(batches))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return total / max(seen, 1)


def _augmented(
    image: np.ndarray, label: int, rng: np.random.Generator, policy: str, scale_jitter: float = 0.0
) -> np.ndarray:
    if policy == "both":
        return augment(image, rng, scale_jitter=scale_jitter)
    # The notebook's recipe, kept only to measure its leak: good parts rotated, bad parts flipped.
    if label == 0:
        return augment(image, rng, scale_jitter=scale_jitter)
    return np.ascontiguousarray(image[:, ::-1] if rng.random() < 0.5 else image[::-1, :])


def evaluate_scores(
    net: nn.Module, images: np.ndarray, *, preset: Preset, device: str, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Unaugmented images -> (bad probabilities, logits)."""
    import torch

    net.eval()
    probs, logits = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            x = torch.from_numpy(np.stack([preset.normalise(b) for b in chunk])).to(device)
            out = net(x).float()
            logits.append(out.cpu().numpy())
            probs.append(torch.softmax(out, 1)[:, 1].cpu().numpy())
    return np.concatenate(probs), np.concatenate(logits)


def view_scores(
    net: nn.Module, images: np.ndarray, *, preset: Preset, device: str, views: int, batch_size: int = 32
) -> np.ndarray:
    """Bad probabilities as the station computes them: the mean over ``views`` views of each part."""
    if views == 1:
        return evaluate_scores(net, images, preset=preset, device=device)[0]
    import torch

    from core.model.explain import score_and_cam

    module = score_and_cam(net, views=views).eval()
    probs = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.stack([preset.normalise(b) for b in images[start : start + batch_size]]))
            probs.append(module(x.to(device))[0].float().cpu().numpy())
    return np.concatenate(probs)


def _selection_key(r: EpochResult) -> tuple[float, float, float]:
    # The miss rate is held at its target by the threshold chosen on validation, so the best
    # epoch is the one with the fewest false rejects there; then the miss rate at 0.5, then loss.
    # (Ranking on the miss rate at 0.5 first would crown an epoch that calls every part bad.)
    return (r.val_fpr_at_target, r.val_fnr, r.val_loss)


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


def choose_samples(config: TrainConfig, samples: list[Sample]) -> dict[str, list[Sample]]:
    """Split the data; with ``sample_per_class``, train and validate on a seeded sample only.

    In that regime (the original 1000 good / 350 bad experiments) the images not sampled form
    the held-out test split, de-duplicated against the sample by content hash.
    """
    if not config.sample_per_class:
        fractions = {"train": 1 - config.val_fraction - config.test_fraction, "val": config.val_fraction}
        if config.test_fraction > 0:
            fractions["test"] = config.test_fraction
        return stratified_split(samples, fractions, seed=config.seed, group_pattern=config.group_pattern)
    rng = np.random.default_rng(config.seed)
    chosen: list[Sample] = []
    for label, name in ((0, "good"), (1, "bad")):
        pool = [s for s in samples if s.label == label]
        want = config.sample_per_class.get(name, len(pool))
        if want > len(pool):
            raise ValueError(f"asked for {want} {name} images, the folder has {len(pool)}")
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), size=want, replace=False))]
    hashes = {s.content_hash for s in chosen}
    rest = [s for s in samples if s.content_hash not in hashes]
    fractions = {"train": 1 - config.val_fraction, "val": config.val_fraction}
    splits = stratified_split(chosen, fractions, seed=config.seed, group_pattern=config.group_pattern)
    splits["test"] = rest
    return splits


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
        splits = choose_samples(config, scan_folder(data_dir, config.class_map))
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

    net = build_model(
        config.architecture, channels=config.channels, pretrained=config.pretrained, pooling=config.pooling
    )
    if config.init_from:
        start = start_from_bundle(net, Path(config.init_from), config)
        log(f"starting from the weights of {config.init_from} ({start.short_hash})")
    net = net.to(device)
    model: nn.Module = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[device] if device.startswith("cuda") else None)
    loss_fn = make_loss(train_y, config.bad_weight_factor, device, gamma=config.focal_gamma)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(train_x) // (config.batch_size * world) + 1)
    total_steps = max(4, steps_per_epoch * config.epochs + 1)
    # A fifth of the run warms up; at least two steps, or a very short run (one epoch of a small
    # folder) would give the schedule an empty first phase (a division by zero inside PyTorch).
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=total_steps, pct_start=min(0.5, max(0.2, 2.0 / total_steps))
    )

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
        writer.writerow(["epoch", "train_loss", "val_loss", "val_fnr_at_0.5", "val_fpr_at_0.5", "val_auc",
                         "val_fpr_at_target", "seconds"])  # fmt: skip
    try:
        for epoch in range(1, config.epochs + 1):
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
                writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in vars_of(result)])
                csv_file.flush()
                log(
                    f"epoch {epoch}/{config.epochs}: loss {train_loss:.4f} val loss {val_loss:.4f} "
                    f"FNR@0.5 {fnr:.3f} FPR@0.5 {fpr:.3f} FPR@target {fpr_target:.3f} "
                    f"AUC {result.val_auc:.4f} ({result.seconds:.1f} s)"
                )
                if best is None or _selection_key(result) < _selection_key(best):
                    best, stale = result, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
                    if stale >= config.patience:
                        log(f"no better epoch for {config.patience} epochs: stopping")
                        stop = True
                spent = sum(r.seconds for r in history)
                limit = config.max_minutes * 60 if config.max_minutes else float("inf")
                if not stop and spent > limit and epoch < config.epochs:
                    log(
                        f"{spent / 60:.1f} min of training, past the limit of {config.max_minutes:g} min: stopping"
                    )
                    stop = True
            if world > 1:
                import torch.distributed as dist

                flag = torch.tensor([1.0 if stop else 0.0])
                dist.broadcast(flag, src=0)
                stop = bool(flag.item())
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
    if config.fixed_threshold is not None:
        threshold = config.fixed_threshold
    else:
        rule = threshold_with_margin if config.threshold_rule == "margin" else threshold_for_miss_rate
        threshold = rule(val_y, probs, config.target_miss_rate)
    fnr, fpr = rates_at(val_y, probs, threshold)
    metrics = {
        "best_epoch": best.epoch,
        "val_auc": best.val_auc,
        "views": config.views,
        "val_auc_over_views": roc_auc(val_y, probs),
        "threshold_rule": config.threshold_rule if config.fixed_threshold is None else "fixed",
        "threshold_highest": threshold_for_miss_rate(val_y, probs, config.target_miss_rate),
        "val_fnr_at_threshold": fnr,
        "val_fpr_at_threshold": fpr,
        "val_fnr_at_0.5": best.val_fnr,
        "val_fpr_at_0.5": best.val_fpr,
        "val_counts": {"good": int((val_y == 0).sum()), "bad": int((val_y == 1).sum())},
        "train_counts": {"good": int((train_y == 0).sum()), "bad": int((train_y == 1).sum())},
        "epochs_run": len(history),
        "train_seconds": round(sum(r.seconds for r in history), 1),
        "device": device,
        "processes": world,
    }
    log(f"best epoch {best.epoch}; threshold {threshold:.4f}: val FNR {fnr:.3f}, FPR {fpr:.3f}")
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
    )
    write_atomic(out_dir / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return card


def vars_of(r: EpochResult) -> list[Any]:
    return [
        r.epoch,
        r.train_loss,
        r.val_loss,
        r.val_fnr,
        r.val_fpr,
        r.val_auc,
        r.val_fpr_at_target,
        r.seconds,
    ]
