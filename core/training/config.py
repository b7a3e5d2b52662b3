"""The training configuration (``TrainConfig``) and how it resolves into the run's splits.

Everything a run depends on is one pydantic model with ``extra="forbid"``; ``train`` saves it,
resolved, as the run folder's ``config.json``. ``choose_samples`` turns it and a scanned folder
into the train / val / test splits.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.model.architectures import ARCHITECTURES
from core.training.data import DEFAULT_CLASS_MAP, Sample, stratified_split

__all__ = ["CONFIG_SCHEMA_VERSION", "TrainConfig", "choose_samples"]

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
    patience: int = Field(
        6,
        ge=1,
        description="Stop after this many epochs without a better selection key, counted only in the last 40% "
        "of the schedule (before that the learning rate is at its peak and epochs swing).",
    )
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="Minutes of training the run may take (a run that must end by a set time, on a shared or "
        "borrowed machine): after the first epoch, the epochs that fit at its pace (at most --epochs) are "
        "run and the one-cycle schedule is fitted to them, so the run ends with a finished schedule; an "
        "epoch that ends past the limit (later epochs slower) still stops the run, the best epoch so far "
        "becoming the bundle.",
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
        "and are then trained as bad: pinholes a small sample shows too rarely. 0 disables. With no bad image "
        "at all (a line with no defect photographed yet), e.g. 0.5 trains on good parts alone: the pits are then "
        "the only bad parts, in training and (pitted copies of the validation good parts) in validation; add "
        "--anomaly for the good-only second opinion.",
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
    false_reject_budget: float = Field(
        0.01,
        ge=0,
        le=0.5,
        description="Share of validation good parts the classifier's threshold may reject to sit lower than the "
        "rule puts it: the threshold is the lower of the rule's and the one rejecting this share of validation "
        "good parts (a missed defect costs more than a rejected good part). Spent only when it allows at least "
        "one validation good part; 0 keeps the rule's threshold. The second opinion has a budget of its own.",
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
    anomaly: bool = Field(
        False,
        description="Also fit the good-only second opinion (core.model.anomaly): a per-location Gaussian of "
        "the trained classifier's own features on the good training images, its threshold chosen on "
        "validation good parts for --anomaly-budget. A part is then bad when either opinion passes its "
        "threshold; it catches defect kinds no training image shows.",
    )
    anomaly_dims: int | None = Field(
        128,
        ge=1,
        description="Feature channels the anomaly model keeps per cell (chosen at random, seeded); None: all.",
    )
    anomaly_budget: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="Share of validation good parts the anomaly threshold may reject (its false-reject budget).",
    )


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
