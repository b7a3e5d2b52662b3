"""One epoch at a time: the in-memory images, the loss, the training pass and the validation scores.

Plain functions in the torchvision references' manner; ``core.training.fit.train`` drives them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from core.imaging.decode import read_image
from core.imaging.preprocess import Preset
from core.training.augment import add_spots, augment
from core.training.data import Sample

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "EPOCH_COLUMNS",
    "EpochResult",
    "ProgressFn",
    "epoch_row",
    "evaluate_scores",
    "load_images",
    "make_loss",
    "selection_key",
    "train_one_epoch",
    "view_scores",
]


@dataclass(frozen=True, slots=True)
class EpochResult:
    """What one epoch gave on validation (rates at a threshold of 0.5 unless named otherwise)."""

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


def selection_key(r: EpochResult) -> tuple[float, float, float]:
    """Sort key of epochs, best first."""
    # The miss rate is held at its target by the threshold chosen on validation, so the best
    # epoch is the one with the fewest false rejects there; then the miss rate at 0.5, then loss.
    # (Ranking on the miss rate at 0.5 first would crown an epoch that calls every part bad.)
    return (r.val_fpr_at_target, r.val_fnr, r.val_loss)


EPOCH_COLUMNS = ["epoch", "train_loss", "val_loss", "val_fnr_at_0.5", "val_fpr_at_0.5", "val_auc",
                 "val_fpr_at_target", "seconds"]  # fmt: skip


def epoch_row(r: EpochResult) -> list[Any]:
    """``r`` in the order of ``EPOCH_COLUMNS`` (a row of the run's ``epochs.csv``)."""
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
