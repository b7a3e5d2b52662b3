"""A defect kind no training image shows: the anomaly score catches it, the classifier misses it (issue 20).

Generated parts (``core.synth``), each once clean and once damaged (pairs, as the demo trains).
The training set's bad parts carry dark blotches only; the held-out parts carry a corrupted
block (a patch of pixel noise), a kind the classifier never saw. A tiny classifier learns the
blotches within seconds and scores the noise blocks like good parts; the good-only model,
fitted on the same run's good images, finds them because no good part looks like that.

(Bright scratches were tried first as the held-out kind: at 64 px they look too much like the
generated parts' own bright relief lines, and neither opinion separated them; that is a limit of
the test parts at this size, measured, not of the method on photographs.)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.common.fileio import write_atomic

SIZE, RENDER = 64, 192
TRAIN_PAIRS, HELD_OUT = 100, 24


def _part(index: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    from core.synth.parts import render_part

    rng = np.random.default_rng(np.random.SeedSequence([5, index]))
    image, spec = render_part(rng, defective=False, size=RENDER)
    scale = SIZE / RENDER
    cx, cy = spec.center_xy
    return cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA), (
        cx * scale,
        cy * scale,
        spec.radius_px * scale,
    )


def _on_part(rng: np.random.Generator, disc: tuple[float, float, float], reach: float) -> tuple[int, int]:
    cx, cy, radius = disc
    angle, distance = rng.uniform(0, 2 * np.pi), radius * reach * np.sqrt(rng.uniform(0.1, 1.0))
    return int(cx + distance * np.cos(angle)), int(cy + distance * np.sin(angle))


def _blotches(image: np.ndarray, disc: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    out = image.copy()
    for _ in range(int(rng.integers(1, 3))):
        radius, grey = int(rng.integers(3, 5)), int(rng.integers(10, 40))
        cv2.circle(out, _on_part(rng, disc, 0.7), radius, grey, -1, cv2.LINE_AA)
    return out


def _noise_block(image: np.ndarray, disc: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    out = image.copy()
    x, y = _on_part(rng, disc, 0.5)
    out[y - 6 : y + 6, x - 6 : x + 6] = rng.integers(0, 256, size=(12, 12))
    return out


def _write(path: Path, image: np.ndarray) -> None:
    write_atomic(path, cv2.imencode(".png", image)[1].tobytes(), fsync=False)


@pytest.mark.slow
def test_a_defect_kind_absent_from_training_is_caught_by_the_anomaly_score(tmp_path: Path) -> None:
    from core.inference.inspector import Inspector
    from core.training.fit import TrainConfig, train

    train_dir, held = tmp_path / "train", {"good": [], "bad": []}  # type: dict[str, list[np.ndarray]]
    for index in range(TRAIN_PAIRS + HELD_OUT):
        image, disc = _part(index)
        rng = np.random.default_rng(index)
        if index < TRAIN_PAIRS:
            _write(train_dir / "good" / f"good_{index:05d}.png", image)
            _write(train_dir / "bad" / f"bad_{index:05d}.png", _blotches(image, disc, rng))
        else:
            held["good"].append(image)
            held["bad"].append(_noise_block(image, disc, rng))
    config = TrainConfig(
        name="held-out", architecture="tiny_cnn", input_size=SIZE, epochs=12, batch_size=16, lr=5e-3,
        val_fraction=0.2, test_fraction=0.0, augment=False, bad_weight_factor=1.0,
        group_pattern=r"_(\d+)\.png$", seed=1, views=4, anomaly=True, anomaly_dims=16, anomaly_budget=0.05,
    )  # fmt: skip
    train(config, train_dir, tmp_path / "run", log=lambda _m: None)

    with Inspector(tmp_path / "run", backend="torch") as inspector:
        good, bad = inspector.inspect_batch(held["good"]), inspector.inspect_batch(held["bad"])
        # The trained kind is learnt: the classifier catches fresh blotched parts on its own.
        blotched = inspector.inspect_batch(
            [
                _blotches(img, _part(i)[1], np.random.default_rng(1000 + i))
                for i, img in enumerate(held["good"])
            ]
        )
    assert sum(r.score >= r.threshold for r in blotched) >= 20
    from core.common.metrics import roc_auc
    from core.model.anomaly import threshold_for_budget

    labels = np.array([0] * len(good) + [1] * len(bad))
    classifier = np.array([r.score for r in good + bad])
    anomaly = np.array([r.anomaly_score for r in good + bad], dtype=np.float64)
    # Missed by the classifier trained without the kind: none or almost none past its threshold.
    classifier_caught = int((classifier[labels == 1] >= good[0].threshold).sum())
    assert classifier_caught <= 2
    # Ranked above good parts by the anomaly score (measured: AUC 0.81; the classifier 0 caught).
    assert roc_auc(labels, anomaly) >= 0.75
    # At a threshold that rejects one of these 24 good parts, it catches several the classifier missed.
    # (The threshold chosen on the run's 20 validation good parts sits higher here: one of them is
    # an outlier of the generated parts, and 20 parts are too few to place a 5% budget well.)
    limit = threshold_for_budget(anomaly[labels == 0], 0.05)
    assert int((anomaly[labels == 1] >= limit).sum()) >= max(4, 2 * classifier_caught)
    # Both opinions are in every result, and the combined verdict follows them.
    for r in good + bad:
        assert r.anomaly_threshold == bad[0].anomaly_threshold
        assert (r.verdict == "bad") == (r.score >= r.threshold or r.anomaly_score >= r.anomaly_threshold)  # type: ignore[operator]


def test_a_run_on_good_parts_alone_needs_synthetic_defects(tmp_path: Path) -> None:
    from core.training.fit import TrainConfig, train

    for index in range(12):
        _write(tmp_path / "train" / "good" / f"good_{index:05d}.png", _part(index)[0])
    config = TrainConfig(name="good", architecture="tiny_cnn", input_size=SIZE, epochs=1, test_fraction=0.0)
    with pytest.raises(ValueError, match="0 bad.*no bad part at all.*--synthetic-spots"):
        train(config, tmp_path / "train", tmp_path / "run", log=lambda _m: None)


def test_a_run_that_learnt_nothing_says_so(tmp_path: Path) -> None:
    # The same pictures in both classes: no model can tell them apart (validation AUC 0.5). A
    # good-only run on the casting photographs ended like this and only the figures showed it.
    from core.training.fit import TrainConfig, train

    for index in range(16):
        image = _part(index)[0]
        _write(tmp_path / "train" / "good" / f"good_{index:05d}.png", image)
        _write(tmp_path / "train" / "bad" / f"bad_{index:05d}.png", image)
    logged: list[str] = []
    config = TrainConfig(
        name="chance", architecture="tiny_cnn", input_size=SIZE, epochs=1, test_fraction=0.0, augment=False
    )
    train(config, tmp_path / "train", tmp_path / "run", log=logged.append)
    warnings = [line for line in logged if line.startswith("WARNING: the classifier did not learn")]
    assert len(warnings) == 1 and "0.5 is chance" in warnings[0], logged


@pytest.mark.slow
def test_a_run_on_good_parts_alone_catches_defects_it_never_saw(tmp_path: Path) -> None:
    """No defect of any kind in training: the classifier learns synthetic pits, the good-only
    model is fitted on the good parts, and both meet real (here: generated) defects only in the test."""
    import json

    from core.common.metrics import roc_auc
    from core.inference.inspector import Inspector
    from core.training.fit import TrainConfig, train

    train_dir, held = tmp_path / "train", {"good": [], "bad": []}  # type: dict[str, list[np.ndarray]]
    for index in range(TRAIN_PAIRS + HELD_OUT):
        image, disc = _part(index)
        if index < TRAIN_PAIRS:
            _write(train_dir / "good" / f"good_{index:05d}.png", image)
        else:
            held["good"].append(image)
            held["bad"].append(_noise_block(image, disc, np.random.default_rng(index)))
    logged: list[str] = []
    config = TrainConfig(
        name="good-only", architecture="tiny_cnn", input_size=SIZE, epochs=16, batch_size=16, lr=5e-3,
        val_fraction=0.2, test_fraction=0.0, augment=False, synthetic_spots=0.5, seed=1, views=4,
        anomaly=True, anomaly_dims=16, anomaly_budget=0.05,
    )  # fmt: skip
    train(config, train_dir, tmp_path / "run", log=logged.append)

    assert any(line.startswith("no bad image: trained against synthetic pits on 50%") for line in logged)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["good_only"] is True
    assert metrics["train_counts"]["bad"] == 0
    # validated on the good parts and a pitted copy of each
    assert metrics["val_counts"]["good"] == metrics["val_counts"]["bad"] == 20
    with Inspector(tmp_path / "run", backend="torch") as inspector:
        results = inspector.inspect_batch(held["good"] + held["bad"])
    labels = np.array([0] * HELD_OUT + [1] * HELD_OUT)
    anomaly = np.array([r.anomaly_score for r in results], dtype=np.float64)
    classifier = np.array([r.score for r in results])
    # Measured: the anomaly score's AUC 0.93 (seeds 2 and 3: 0.73, 0.76); the classifier, which
    # knows only the pits, 0.50 (0.58, 0.51): the noise blocks look nothing like pits.
    assert roc_auc(labels, anomaly) >= 0.7
    assert roc_auc(labels, anomaly) >= roc_auc(labels, classifier) + 0.1
