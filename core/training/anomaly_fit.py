"""Fitting the good-only second opinion of a trained classifier (``core.model.anomaly``).

``fit_anomaly`` runs the classifier's features over the good training images (in every view the
bundle uses), fits the per-location Gaussian, writes ``anomaly.safetensors`` and chooses the
anomaly threshold on the validation good parts for a false-reject budget. ``train`` calls it
after the epochs (``--anomaly``); ``add_to_bundle`` does it for a bundle trained before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.common.metrics import rates_at, roc_auc
from core.imaging.preprocess import Preset
from core.model.anomaly import (
    AnomalyCard,
    GaussianFit,
    anomaly_head,
    layers_for,
    save_tensors,
    score_cam_anomaly,
    tap,
    threshold_for_budget,
)
from core.model.explain import view_transforms

if TYPE_CHECKING:
    from torch import nn

__all__ = ["add_to_bundle", "fit_anomaly"]


def _prepared(images: np.ndarray, preset: Preset) -> np.ndarray:
    """uint8 N x S x S images (S the input size or the training-time ``augment_size``) -> model input."""
    if images.shape[-1] == preset.input_size:
        return np.stack([preset.normalise(i) for i in images]).astype(np.float32, copy=False)
    return preset.batch(list(images))


def fit_anomaly(
    net: nn.Module,
    *,
    architecture: str,
    preset: Preset,
    views: int,
    good_images: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    classifier_threshold: float,
    out_dir: Path,
    dims: int | None = 128,
    budget: float = 0.01,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 16,
    log: Callable[[str], None] = print,
) -> AnomalyCard:
    """Fit the Gaussian on ``good_images`` and choose its threshold on the validation good parts.

    Args:
        net: The trained classifier (its weights are not changed).
        architecture: Its architecture (which blocks are tapped: ``DEFAULT_LAYERS``).
        preset: The bundle's preprocessing.
        views: The bundle's views: each good image is fitted in every one of them, and parts are
            scored as the station scores them.
        good_images: uint8 N x S x S good training images.
        val_images: uint8 validation images at the input size.
        val_labels: Their labels (1 = bad).
        classifier_threshold: The classifier's chosen threshold (for the combined figures).
        out_dir: The bundle folder; ``anomaly.safetensors`` is written there.
        dims: Channels kept per cell (None: all).
        budget: The false-reject budget of the threshold on validation good parts.

    Returns:
        The card of the anomaly model, to go into the model card.

    Raises:
        ValueError: Fewer than two good training images or no validation good part.
    """
    import torch

    layers = layers_for(architecture)
    net = net.to(device).eval()
    transforms = view_transforms(views)
    fit = GaussianFit()
    with torch.inference_mode():
        for start in range(0, len(good_images), batch_size):
            x = torch.from_numpy(_prepared(good_images[start : start + batch_size], preset)).to(device)
            for transpose, axes in transforms:
                v = x.transpose(-2, -1) if transpose else x
                v = torch.flip(v, axes) if axes else v
                fit.add(tap(net, v, layers)[0].cpu())
    tensors = fit.finish(dims, seed=seed)
    sha = save_tensors(out_dir, tensors)
    combined = score_cam_anomaly(net, anomaly_head(tensors, fit.grid), layers, views=views).to(device).eval()
    probs, scores = [], []
    with torch.inference_mode():
        for start in range(0, len(val_images), batch_size):
            x = torch.from_numpy(_prepared(val_images[start : start + batch_size], preset)).to(device)
            prob, _cam, score, _map = combined(x)
            probs.append(prob.float().cpu().numpy())
            scores.append(score.float().cpu().numpy())
    p, a = np.concatenate(probs), np.concatenate(scores)
    threshold = threshold_for_budget(a[val_labels == 0], budget)
    metrics = validation_figures(val_labels, p, classifier_threshold, a, threshold)
    log(
        f"anomaly model: {len(tensors['channels'])} channels on {fit.grid[0]} x {fit.grid[1]} cells of blocks "
        f"{layers}, fitted on {len(good_images)} good images x {views} view(s); threshold {threshold:.4g} "
        f"(validation AUC {metrics['val_auc_anomaly']:.4f}; combined: {metrics['val_fn_combined']} missed, "
        f"{metrics['val_fp_combined']} false rejects)"
    )
    return AnomalyCard(
        layers=layers,
        dims=len(tensors["channels"]),
        grid=fit.grid,
        weights_sha256=sha,
        threshold=threshold,
        false_reject_budget=budget,
        fitted_on=len(good_images),
        metrics=metrics,
    )


def validation_figures(
    labels: np.ndarray, probs: np.ndarray, threshold: float, anomaly: np.ndarray, anomaly_threshold: float
) -> dict[str, Any]:
    """Each opinion alone and both together at their thresholds (counts and rates)."""
    bad = labels == 1
    combined = (probs >= threshold) | (anomaly >= anomaly_threshold)
    fnr_a, fpr_a = rates_at(labels, anomaly, anomaly_threshold)
    return {
        "val_auc_anomaly": roc_auc(labels, anomaly) if len(np.unique(labels)) == 2 else float("nan"),
        "val_fnr_anomaly": fnr_a,
        "val_fpr_anomaly": fpr_a,
        "val_fn_combined": int((bad & ~combined).sum()),
        "val_fp_combined": int((~bad & combined).sum()),
        "val_fnr_combined": float((bad & ~combined).sum() / max(int(bad.sum()), 1)),
        "val_fpr_combined": float((~bad & combined).sum() / max(int((~bad).sum()), 1)),
    }


def add_to_bundle(
    bundle: Path,
    *,
    dims: int | None = 128,
    budget: float = 0.01,
    seed: int = 0,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> AnomalyCard:
    """Fit the second opinion for a bundle trained without one, from its run's ``split.json``.

    The good images of the manifest's train split are fitted, its validation split chooses the
    threshold; the card is written again with the anomaly model on it (a new model hash: the
    decisions it makes are another model's). An ONNX export made before must be made again.

    Raises:
        BundleError: The bundle cannot be read.
        ValueError: The run folder has no manifest with train and val splits, or images are missing.
    """
    from core.model.bundle import bundle_dir, load_net, write_card
    from core.training.data import check_manifest_images, read_manifest
    from core.training.epochs import load_images

    folder = bundle_dir(bundle)
    manifest = folder / "split.json"
    if not manifest.is_file():
        raise ValueError(f"{folder} has no split.json: the anomaly model is fitted on the run's own splits")
    splits = read_manifest(manifest)
    check_manifest_images(splits, ("train", "val"), manifest, Path(json.loads(manifest.read_text())["root"]))
    net, card = load_net(folder)
    preset = card.preset
    good = load_images([s for s in splits["train"] if s.label == 0], preset)
    val_x = load_images(splits["val"], preset)
    val_y = np.array([s.label for s in splits["val"]], dtype=np.int64)
    anomaly = fit_anomaly(
        net, architecture=card.architecture, preset=preset, views=card.views, good_images=good,
        val_images=val_x, val_labels=val_y, classifier_threshold=card.threshold, out_dir=folder,
        dims=dims, budget=budget, seed=seed, device=device, log=log,
    )  # fmt: skip
    write_card(folder, card.model_copy(update={"anomaly": anomaly}))
    return anomaly
