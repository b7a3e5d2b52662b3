"""The built-in demo: generated parts, a demo model trained on the CPU, a fed hot folder.

Nothing outside the product is needed: the first run generates labelled demo parts, trains a
small model in about a minute (cached afterwards under the user's data directory) and then feeds
new parts into a demo hot folder that the station watches.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.bundle import BundleError, read_card
from core.paths import demo_dir

if TYPE_CHECKING:
    from core.train import TrainConfig

# Bump when the recipe below changes, so a cached demo model from an older recipe is retrained.
DEMO_RECIPE = 2
DEMO_TRAIN_SIZE = 256  # generated training parts; the model sees them at its input size
DEMO_PER_CLASS = 600


def demo_model_dir() -> Path:
    return demo_dir() / "model"


def demo_inbox() -> Path:
    return demo_dir() / "inbox"


def ensure_demo_model(
    *,
    progress: Callable[[str, int, int], None] | None = None,
    log: Callable[[str], None] = print,
    retrain: bool = False,
) -> Path:
    """The cached demo model bundle, trained first if missing, stale or damaged."""
    from core.train import train

    folder = demo_model_dir()
    if not retrain:
        try:
            card = read_card(folder)
            if card.metrics.get("demo_recipe") == DEMO_RECIPE:
                return folder
            log("the cached demo model is from an older recipe: training a new one")
        except BundleError as exc:
            if folder.exists():
                log(f"the cached demo model cannot be used ({exc}): training a new one")
    data = demo_dir() / f"train-data-v{DEMO_RECIPE}"
    if not (data / "good").is_dir() or len(list((data / "bad").glob("*.png"))) < DEMO_PER_CLASS:
        shutil.rmtree(data, ignore_errors=True)
        log(f"generating {2 * DEMO_PER_CLASS} demo parts for training…")
        generate_pairs(data, DEMO_PER_CLASS, size=DEMO_TRAIN_SIZE, seed=20261125, progress=progress)
    config = demo_training_config()
    started = time.perf_counter()
    staging = folder.with_name("model.training")
    shutil.rmtree(staging, ignore_errors=True)
    train(config, data, staging, progress=progress, log=log)
    _mark_recipe(staging)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    log(f"demo model trained in {time.perf_counter() - started:.0f} s: {folder}")
    return folder


def generate_pairs(
    out_dir: Path,
    n_pairs: int,
    *,
    size: int,
    seed: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> None:
    """Each part twice, clean in ``good/`` and damaged in ``bad/`` (same pose and exposure).

    The pairs differ only where the defect is, which is what makes a small model learn the
    defects rather than the parts within the demo's one-minute budget. The split keeps the two
    of a pair together (``group_pattern``), so validation never sees the twin of a training part.
    """
    import cv2
    import numpy as np

    from core.fileio import write_atomic
    from core.synth import render_part

    for i in range(n_pairs):
        for label, defective in (("good", False), ("bad", True)):
            rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
            image, _ = render_part(rng, defective=defective, size=size)
            ok, png = cv2.imencode(".png", image)
            assert ok
            write_atomic(out_dir / label / f"{label}_{i:05d}.png", png.tobytes(), fsync=False)
        if progress:
            progress("generate", i + 1, n_pairs)


def demo_training_config() -> TrainConfig:
    from core.train import TrainConfig

    # The generator already varies rotation, position, exposure and blur like the line does,
    # so the demo skips augmentation and fits its one-minute budget.
    return TrainConfig(
        name="demo",
        architecture="tiny_cnn",
        input_size=128,
        epochs=10,
        patience=10,
        batch_size=32,
        lr=5e-3,
        bad_weight_factor=1.0,
        val_fraction=0.2,
        test_fraction=0.0,
        augment=False,
        # A one-minute model cannot catch the faintest generated defects without rejecting
        # nearly every part; the demo allows 2% misses on validation so its verdicts make sense.
        # Real models keep the default target of zero misses.
        target_miss_rate=0.02,
        group_pattern=r"_(\d+)\.png$",
        seed=7,
    )


def _mark_recipe(folder: Path) -> None:
    """Record the recipe version in the card (the weights hash stays valid)."""
    import json

    from core.bundle import CARD_FILE
    from core.fileio import write_atomic

    card_path = folder / CARD_FILE
    doc = json.loads(card_path.read_text(encoding="utf-8"))
    doc["metrics"]["demo_recipe"] = DEMO_RECIPE
    write_atomic(card_path, (json.dumps(doc, indent=2) + "\n").encode())


class DemoFeeder:
    """Feeds generated parts into the demo inbox on a background thread."""

    def __init__(
        self, inbox: Path, *, rate_hz: float = 2.0, count: int | None = None, bad_fraction: float = 0.25
    ):
        from core.synth import feed_hot_folder

        self.inbox = inbox
        self._stop = threading.Event()
        # A new seed each run: the same parts again would be duplicates of the ones in the log.
        seed = time.time_ns() % (2**31)
        self._thread = threading.Thread(
            target=feed_hot_folder,
            name="demo-feeder",
            kwargs=dict(
                inbox=inbox,
                rate_hz=rate_hz,
                count=count,
                seed=seed,
                bad_fraction=bad_fraction,
                stop=self._stop,
            ),
            daemon=True,
        )

    def start(self) -> DemoFeeder:
        self.inbox.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
