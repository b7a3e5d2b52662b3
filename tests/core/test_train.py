"""Training side: seeded sampling regime, evaluation report, and DistributedDataParallel."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.training.config import TrainConfig, choose_samples
from core.training.data import Sample
from core.training.evaluation import evaluate, upper_bound


def test_clopper_pearson_upper_bound() -> None:
    assert upper_bound(0, 100) == pytest.approx(0.0295, abs=1e-4)  # the "3/n" rule
    assert upper_bound(0, 1000) == pytest.approx(0.003, abs=1e-4)
    assert upper_bound(5, 100) > 0.05 > upper_bound(0, 100)
    assert upper_bound(3, 3) == 1.0


def test_sample_per_class_regime_tests_on_the_rest() -> None:
    samples = [Sample(Path(f"ok/{i}.png"), 0, f"g{i}") for i in range(200)]
    samples += [Sample(Path(f"def/{i}.png"), 1, f"b{i}") for i in range(120)]
    samples.append(Sample(Path("def/copy.png"), 1, "b0"))  # duplicate of b0
    config = TrainConfig(sample_per_class={"good": 100, "bad": 35}, val_fraction=0.2, seed=5)
    splits = choose_samples(config, samples)
    sampled = splits["train"] + splits["val"]
    assert sum(s.label == 0 for s in sampled) == 100 and sum(s.label == 1 for s in sampled) == 35
    assert {s.content_hash for s in sampled}.isdisjoint({s.content_hash for s in splits["test"]})
    assert len(sampled) + len(splits["test"]) + (
        1 if "b0" in {s.content_hash for s in sampled} else 0
    ) == len(samples)
    assert choose_samples(config, samples) == splits  # seeded
    with pytest.raises(ValueError, match="asked for"):
        choose_samples(TrainConfig(sample_per_class={"bad": 500}), samples)


def test_evaluation_report_with_bounds_figures_and_leak_check(
    tiny_model: Path, pair_data: Path, tmp_path: Path
) -> None:
    report = evaluate(tiny_model, pair_data, tmp_path / "eval", split="val")
    op = report["at_chosen_threshold"]
    assert op["tp"] + op["fn"] == report["data"]["bad"] > 0
    assert op["fnr_upper95"] >= op["fnr"] and op["fpr_upper95"] >= op["fpr"]
    assert 0.0 <= report["roc_auc"] <= 1.0
    for name in ("report.json", "report.md", "confusion.png", "curves.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 100
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["model"]["architecture"] == "tiny_cnn"
    leak = report["leak_check"]
    assert set(leak) == {"good", "bad", "passed"} and leak["good"]["n"] > 0
    # Every image's score is kept, and the hindsight point catches every defect of the set.
    rows = list(csv.DictReader((tmp_path / "eval" / "scores.csv").open()))
    assert len(rows) == report["data"]["good"] + report["data"]["bad"]
    bad_scores = [float(r["score"]) for r in rows if r["label"] == "bad"]
    hindsight = report["catch_all_in_hindsight"]
    assert hindsight["fn"] == 0 and hindsight["threshold"] == min(bad_scores)
    assert hindsight["fp"] == sum(
        float(r["score"]) >= hindsight["threshold"] for r in rows if r["label"] == "good"
    )


@pytest.mark.timeout(240)
def test_torchrun_two_processes_gloo(pair_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "core.cli", "train", str(pair_data), "--out", str(out), "--arch", "tiny_cnn",
        "--input-size", "48", "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--threads", "1",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=220, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "model.json").read_text())
    assert card["architecture"] == "tiny_cnn" and card["metrics"]["processes"] == 2
    from core.inference.inspector import Inspector

    assert Inspector(out).card.input_size == 48


def test_leak_check_needs_the_scores_to_move_not_only_the_rate() -> None:
    from core.training.evaluation import scores_agree

    rng = np.random.default_rng(0)
    # The notebook's recipe: augmented good parts score as good, plain ones as bad.
    assert not scores_agree(rng.uniform(0.7, 1.0, 60), rng.uniform(0.0, 0.1, 60), threshold=0.5)
    # Scores a little higher after augmentation, threshold in the crowd near zero: the rate jumps,
    # the scores barely move.
    plain = rng.uniform(0.0, 0.04, 60)
    assert not scores_agree(plain, plain + 0.06, threshold=0.03, tolerance=0.05)
    assert scores_agree(plain, plain + 0.06, threshold=0.03)
    assert scores_agree(plain, plain, threshold=0.03, tolerance=0.0)


def test_views_are_kept_in_the_bundle_and_the_threshold_is_chosen_on_them(
    pair_data: Path, tmp_path: Path
) -> None:
    from core.common.metrics import threshold_with_margin
    from core.model.bundle import load_net
    from core.training.data import read_manifest
    from core.training.epochs import load_images, view_scores
    from core.training.fit import train

    config = TrainConfig(
        architecture="tiny_cnn", input_size=32, epochs=2, batch_size=16, val_fraction=0.25,
        test_fraction=0.0, group_pattern=r"_(\d+)\.png$", seed=2, views=8,
    )  # fmt: skip
    card = train(config, pair_data, tmp_path / "run", log=lambda _m: None)
    assert card.views == 8 and card.metrics["views"] == 8
    net, _ = load_net(tmp_path / "run")
    val = read_manifest(tmp_path / "run" / "split.json")["val"]
    images = load_images(val, card.preset)
    labels = np.array([s.label for s in val])
    eight = view_scores(net, images, preset=card.preset, device="cpu", views=8)
    assert card.threshold == pytest.approx(threshold_with_margin(labels, eight, 0.0), abs=1e-6)
    one = view_scores(net, images, preset=card.preset, device="cpu", views=1)
    assert np.abs(eight - one).max() > 1e-4  # a different score, so the check above means something


def test_focal_loss_is_weighted_cross_entropy_at_gamma_0_and_spares_easy_parts() -> None:
    import torch

    from core.training.epochs import make_loss

    labels = np.array([0] * 30 + [1] * 10)  # bad weight = 30 / 10 x 2 = 6
    torch.manual_seed(0)
    logits, target = torch.randn(16, 2) * 3, torch.tensor([0, 1] * 8)
    cross_entropy = torch.nn.functional.cross_entropy(logits, target, weight=torch.tensor([1.0, 6.0]))
    assert float(make_loss(labels, 2.0, "cpu", gamma=0.0)(logits, target)) == pytest.approx(
        float(cross_entropy)
    )

    focal = make_loss(labels, 2.0, "cpu", gamma=2.0)
    assert float(focal(logits, target)) < float(cross_entropy)
    # Per part: an easy part (p_true 0.99) loses 0.01**2 of its weight, a hard one (p_true 0.1) 0.81.
    easy, hard = torch.tensor([[0.0, float(np.log(99.0))]]), torch.tensor([[float(np.log(9.0)), 0.0]])
    bad = torch.tensor([1])
    ce = make_loss(labels, 2.0, "cpu")
    assert float(focal(easy, bad)) == pytest.approx(float(ce(easy, bad)) * 0.01**2, rel=1e-4)
    assert float(focal(hard, bad)) == pytest.approx(float(ce(hard, bad)) * 0.9**2, rel=1e-4)


def test_focal_loss_trains_a_bundle_in_a_single_epoch(pair_data: Path, tmp_path: Path) -> None:
    # One epoch of 60 parts is 4 steps: the one-cycle schedule once divided by zero there.
    from core.training.fit import train

    config = TrainConfig(
        architecture="tiny_cnn", input_size=32, epochs=1, batch_size=16, val_fraction=0.25,
        test_fraction=0.0, group_pattern=r"_(\d+)\.png$", focal_gamma=2.0,
    )  # fmt: skip
    card = train(config, pair_data, tmp_path / "run", log=lambda _m: None)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["focal_gamma"] == 2.0 and 0.0 <= card.threshold <= 1.0


def _lit_part(size: int = 161, centre: tuple[int, int] = (80, 80)) -> np.ndarray:
    """A round part on a light background, as on the casting photographs: its metal lit on one
    side (brighter than the background) and in shadow on the other (darker), a dark recess inside."""
    import cv2

    rng = np.random.default_rng(5)
    image = np.clip(rng.normal(175, 4, (size, size)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    lit = np.clip(195 + 45 * np.cos(np.arctan2(yy - centre[1], xx - centre[0]) - 2.5), 0, 255)
    disc = np.hypot(yy - centre[1], xx - centre[0]) < 55
    image[disc] = lit[disc].astype(np.uint8)
    cv2.circle(image, centre, 30, 40, -1)
    return image


def test_the_part_centre_is_found_on_a_light_background() -> None:
    # On the casting photographs a centroid of "brighter than the background" was up to 100 px
    # off, and the rotation about it turned parts half out of the picture, defects with them.
    from core.training.augment import augment, part_centre

    image = _lit_part()
    cx, cy = part_centre(image)
    assert abs(cx - 80) < 6 and abs(cy - 80) < 6  # the old centroid: (57.4, 96.9)
    rng = np.random.default_rng(0)
    for _ in range(10):
        out = augment(image, rng)
        ox, oy = part_centre(out)
        # the part stays in the middle (where the flips keep it), up to the shift (4% of 161 px)
        assert abs(ox - 80) < 10 and abs(oy - 80) < 10
        assert (out < 100).sum() > 0.8 * (image < 100).sum()  # the recess is still in the picture


def test_scale_jitter_zooms_the_part_about_its_centre() -> None:
    from core.training.augment import augment

    image = np.full((96, 96), 40, np.uint8)
    cv2 = pytest.importorskip("cv2")
    cv2.circle(image, (48, 48), 30, 200, -1)
    rng = np.random.default_rng(1)

    def areas(jitter: float) -> np.ndarray:
        return np.array([
            (augment(image, rng, scale_jitter=jitter, max_shift=0.0) > 120).sum() for _ in range(40)
        ])  # fmt: skip

    plain, zoomed = areas(0.0), areas(0.2)
    disc = np.pi * 30**2
    assert np.all(np.abs(plain / disc - 1) < 0.1)  # brightness and blur change the area a little
    assert zoomed.min() < disc * 0.8**2 * 1.2 and zoomed.max() > disc * 1.2**2 * 0.8
    assert np.all((zoomed > disc * 0.8**2 * 0.85) & (zoomed < disc * 1.2**2 * 1.15))


def test_synthetic_spots_are_small_dark_pits_on_the_part() -> None:
    import cv2

    from core.training.augment import add_spots

    image = np.full((128, 128), 120, np.uint8)  # background
    cv2.circle(image, (64, 64), 50, 200, -1)  # bright metal
    cv2.circle(image, (64, 64), 35, 30, -1)  # dark centre
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = add_spots(image, rng)
        changed = np.argwhere(image.astype(int) - out > 0.1 * image)  # darker by more than 10%
        assert 0 < len(changed) <= 3 * 45  # at most three pits of a few pixels each
        assert np.all(out <= image)  # pits only darken
        assert (image.astype(int) - out).max() >= 0.3 * 200  # the deepest pixel loses at least 30%
        radii = np.hypot(changed[:, 0] - 64, changed[:, 1] - 64)
        assert radii.max() < 50 + 6 and radii.min() > 35 - 6  # on the metal, not the background


def test_synthetic_spots_turn_only_good_images_into_bad_ones() -> None:
    import torch

    from core.imaging.preprocess import Preset
    from core.training.epochs import train_one_epoch

    seen: list[np.ndarray] = []

    class Recording(torch.nn.Module):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            seen.append(target.numpy().copy())
            return logits.sum() * 0.0

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 2))
    images = np.full((200, 32, 32), 200, np.uint8)
    labels = np.array([0] * 150 + [1] * 50)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.0)
    train_one_epoch(
        net, images, labels, preset=Preset(input_size=32), loss_fn=Recording(), optimiser=optimiser,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimiser, lambda _s: 1.0), batch_size=200,
        rng=np.random.default_rng(0), do_augment=False, device="cpu", synthetic_spots=0.4,
    )  # fmt: skip
    (targets,) = seen
    assert targets.sum() - 50 == pytest.approx(0.4 * 150, abs=20)  # about 40% of the good ones


def test_pits_keep_their_depth_when_augmented_at_the_source_size() -> None:
    """The reason for ``augment_size``: rotating (and blurring) at the input size smears a small pit.

    A 300 px picture of a bright part with a one-pixel pit, augmented with the same random draws
    either after the shrink to 224 px or before it: the pit that reaches the input is deeper in the
    second case (measured: 32 against 18 grey levels on average; 28 without augmentation).
    """
    import cv2

    from core.imaging.preprocess import Preset
    from core.training.augment import augment

    preset = Preset(input_size=224)
    image = np.full((300, 300), 150, np.uint8)
    cv2.circle(image, (150, 150), 120, 200, -1)  # the bright part
    image[100, 230] = 60  # the pit, on the metal near the rim
    metal = np.zeros((224, 224), np.uint8)
    cv2.circle(metal, (112, 112), 80, 1, -1)  # inside the part whatever the rotation
    inside = metal > 0

    def depth(picture: np.ndarray) -> float:
        return float(np.median(picture[inside])) - float(picture[inside].min())

    at_input, at_source = [], []
    for seed in range(60):
        at_input.append(depth(augment(preset.resize(image), np.random.default_rng(seed), max_shift=0)))
        at_source.append(depth(preset.resize(augment(image, np.random.default_rng(seed), max_shift=0))))
    assert np.mean(at_source) > 1.4 * np.mean(at_input)


def test_training_images_held_at_augment_size_reach_the_net_at_the_input_size(tmp_path: Path) -> None:
    import cv2
    import torch

    from core.imaging.preprocess import Preset
    from core.training.epochs import load_images, train_one_epoch

    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), np.full((96, 96), 40 * i, np.uint8))
        paths.append(Sample(path, i % 2, f"h{i}"))
    preset = Preset(input_size=32)
    held = load_images(paths, preset, size=48)
    assert held.shape == (6, 48, 48)
    assert load_images(paths, preset).shape == (6, 32, 32)

    shapes: list[tuple[int, ...]] = []

    class Recording(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            shapes.append(tuple(x.shape))
            return x.flatten(1)[:, :2] * 0.0 + self.bias

    net = Recording()
    optimiser = torch.optim.SGD(net.parameters(), lr=0.0)
    train_one_epoch(
        net, held, np.array([0, 1] * 3), preset=preset, loss_fn=torch.nn.CrossEntropyLoss(), optimiser=optimiser,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimiser, lambda _s: 1.0), batch_size=6,
        rng=np.random.default_rng(0), do_augment=True, device="cpu",
    )  # fmt: skip
    assert shapes == [(6, 1, 32, 32)]


def test_training_can_start_from_a_bundle_and_refuses_a_foreign_or_tampered_one(
    tiny_model: Path, tampered_model: Path, pair_data: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from core.model.bundle import WEIGHTS_FILE, BundleError, read_card
    from core.training.fit import train

    card = read_card(tiny_model)
    start = load_file(str(tiny_model / WEIGHTS_FILE))
    config = TrainConfig(
        architecture=card.architecture, input_size=card.input_size, epochs=1, batch_size=16, lr=1e-9,
        val_fraction=0.25, test_fraction=0.0, seed=5, init_from=str(tiny_model), augment=False,
    )  # fmt: skip
    train(config, pair_data, tmp_path / "tuned", log=lambda _m: None)
    tuned = load_file(str(tmp_path / "tuned" / WEIGHTS_FILE))
    fresh_config = config.model_copy(update={"init_from": None})
    train(fresh_config, pair_data, tmp_path / "fresh", log=lambda _m: None)
    fresh = load_file(str(tmp_path / "fresh" / WEIGHTS_FILE))
    conv = next(k for k, v in start.items() if v.ndim == 4)
    # With a learning rate of 1e-9 the weights stay where they started: the bundle's, not new ones.
    assert float((tuned[conv] - start[conv]).abs().max()) < 1e-5
    assert float((fresh[conv] - start[conv]).abs().max()) > 1e-2

    with pytest.raises(BundleError, match="holds a tiny_cnn"):
        train(config.model_copy(update={"architecture": "mobilenet_v3_small"}), pair_data, tmp_path / "x",
              log=lambda _m: None)  # fmt: skip
    with pytest.raises(BundleError, match="does not match"):
        train(config.model_copy(update={"init_from": str(tampered_model)}), pair_data, tmp_path / "y",
              log=lambda _m: None)  # fmt: skip


def test_a_run_can_reuse_an_earlier_split_and_refuses_changed_images(pair_data: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from core.training.fit import train

    data = tmp_path / "data"
    shutil.copytree(pair_data, data)
    first = TrainConfig(
        architecture="tiny_cnn", input_size=32, epochs=1, batch_size=16, seed=1, val_fraction=0.2,
        test_fraction=0.2, group_pattern=r"_(\d+)\.png$", augment=False,
    )  # fmt: skip
    train(first, data, tmp_path / "first", log=lambda _m: None)
    earlier = json.loads((tmp_path / "first" / "split.json").read_text())["splits"]
    # Training never reads the test part: an image gone from it is no reason to refuse.
    (data / earlier["test"][0]["path"]).unlink()
    # Another seed and fractions would split differently; the manifest wins, part by part.
    again_config = first.model_copy(
        update={
            "seed": 9,
            "val_fraction": 0.4,
            "test_fraction": 0.0,
            "split_from": str(tmp_path / "first" / "split.json"),
        }
    )
    train(again_config, data, tmp_path / "again", log=lambda _m: None)
    again = json.loads((tmp_path / "again" / "split.json").read_text())["splits"]
    assert again == earlier
    assert [len(again[k]) for k in ("train", "val", "test")] == [48, 16, 16]

    victim = data / again["train"][0]["path"]
    victim.write_bytes(victim.read_bytes() + b"\0")
    (data / again["val"][0]["path"]).unlink()
    with pytest.raises(ValueError, match=r"2 image\(s\).*changed since.*missing"):
        train(again_config, data, tmp_path / "refused", log=lambda _m: None)


def test_a_time_limit_stops_training_after_the_epoch_that_passes_it(pair_data: Path, tmp_path: Path) -> None:
    from core.training.fit import train

    config = TrainConfig(
        architecture="tiny_cnn", input_size=32, epochs=3, patience=3, batch_size=16, val_fraction=0.25,
        test_fraction=0.0, group_pattern=r"_(\d+)\.png$", augment=False,
    )  # fmt: skip
    lines: list[str] = []
    train(config.model_copy(update={"max_minutes": 1e-6}), pair_data, tmp_path / "short", log=lines.append)
    assert json.loads((tmp_path / "short" / "metrics.json").read_text())["epochs_run"] == 1
    assert any("past the limit of 1e-06 min" in line for line in lines)
    train(config.model_copy(update={"max_minutes": 60}), pair_data, tmp_path / "long", log=lambda _m: None)
    assert json.loads((tmp_path / "long" / "metrics.json").read_text())["epochs_run"] == 3


def test_batches_augmented_by_a_thread_pool_are_the_batches_of_one_thread() -> None:
    import torch

    from core.imaging.preprocess import Preset
    from core.training.epochs import train_one_epoch

    images = np.random.default_rng(4).integers(0, 255, size=(40, 48, 48), dtype=np.uint8)
    labels = np.array([0, 1] * 20)

    def batches(threads: int, aug_seed: int) -> list[np.ndarray]:
        seen: list[np.ndarray] = []

        class Recording(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                seen.append(x.numpy().copy())
                return torch.zeros(len(x), 2, requires_grad=True)

        optimiser = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
        train_one_epoch(
            Recording(), images, labels, preset=Preset(input_size=32), loss_fn=torch.nn.CrossEntropyLoss(),
            optimiser=optimiser, scheduler=torch.optim.lr_scheduler.LambdaLR(optimiser, lambda _s: 1.0),
            batch_size=16, rng=np.random.default_rng(1), aug_rng=np.random.default_rng(aug_seed),
            do_augment=True, device="cpu", synthetic_spots=0.3, threads=threads,
        )  # fmt: skip
        return seen

    inline, pooled, other = batches(0, 7), batches(3, 7), batches(3, 8)
    # 40 images in batches of 16: two full batches and one of 8, rotated, blurred and spotted alike.
    assert [b.shape[0] for b in inline] == [16, 16, 8]
    assert all(np.array_equal(a, b) for a, b in zip(inline, pooled, strict=True))
    # Not equal because nothing was drawn: other draws give other batches of the same images.
    assert not any(np.array_equal(a, b) for a, b in zip(inline, other, strict=True))


def test_evaluation_refuses_a_split_whose_images_changed(
    tiny_model: Path, pair_data: Path, tmp_path: Path
) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(pair_data, data)
    val = json.loads((tiny_model / "split.json").read_text())["splits"]["val"]
    victim = data / val[0]["path"]
    victim.write_bytes(victim.read_bytes() + b"\0")  # the same picture to a decoder, other bytes
    with pytest.raises(
        ValueError, match=r"the val split of .* does not match .*: 1 image\(s\): .*changed since"
    ):
        evaluate(tiny_model, data, tmp_path / "eval", split="val")


def test_every_train_flag_is_a_config_field_and_reaches_the_config(tmp_path: Path) -> None:
    import argparse

    from core.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {a.dest for a in sub.choices["train"]._actions if a.option_strings and a.dest != "help"}
    # --out and --config say where; every other flag is one setting of the run.
    assert flags - {"out", "config"} <= set(TrainConfig.model_fields)
    assert {"augment_threads", "max_minutes", "pooling", "split_from", "init_from"} <= flags


def test_train_flag_arch_offers_every_architecture_and_refuses_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from core.cli import build_parser
    from core.model.architectures import ARCHITECTURES

    parser = build_parser()
    for name in ARCHITECTURES:
        assert parser.parse_args(["train", "data", "--out", "run", "--arch", name]).architecture == name
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "data", "--out", "run", "--arch", "mobilenet_v4"])
    assert "fullres_cnn" in capsys.readouterr().err


def test_the_false_reject_budget_is_a_setting_and_a_fixed_threshold_wins() -> None:
    from core.cli import build_parser
    from core.common.metrics import threshold_spending_budget, threshold_with_margin
    from core.training.fit import choose_threshold

    rng = np.random.default_rng(3)
    labels = np.array([0] * 150 + [1] * 52)
    scores = np.concatenate([rng.uniform(0.0, 0.3, 150), rng.uniform(0.9, 1.0, 52)])
    rule = threshold_with_margin(labels, scores)
    default = choose_threshold(TrainConfig(), labels, scores)
    assert default == threshold_spending_budget(labels, scores, rule, 0.01) < rule  # 1% by default
    assert int((scores[labels == 0] >= default).sum()) == 1
    two = choose_threshold(TrainConfig(false_reject_budget=0.02), labels, scores)
    assert two < default and int((scores[labels == 0] >= two).sum()) == 3
    assert choose_threshold(TrainConfig(false_reject_budget=0.0), labels, scores) == rule
    assert choose_threshold(TrainConfig(fixed_threshold=0.5, false_reject_budget=0.02), labels, scores) == 0.5
    args = build_parser().parse_args(["train", "data", "--out", "run", "--false-reject-budget", "0.02"])
    assert args.false_reject_budget == 0.02


def test_threshold_rule_highest_sits_on_the_weakest_validation_defect(
    pair_data: Path, tmp_path: Path
) -> None:
    # The README's settings file: {"threshold_rule": "highest"} keeps the threshold on the weakest
    # validation defect's score; the default ("margin") moves it into the gap below.
    from core.cli import main
    from core.model.bundle import load_net, read_card
    from core.training.data import read_manifest
    from core.training.epochs import load_images, view_scores

    base = {
        "architecture": "tiny_cnn", "input_size": 32, "epochs": 2, "batch_size": 16, "val_fraction": 0.25,
        "test_fraction": 0.0, "group_pattern": r"_(\d+)\.png$", "seed": 3,
    }  # fmt: skip
    cards, scores = {}, {}
    for rule in ("margin", "highest"):
        settings = tmp_path / f"{rule}.json"
        settings.write_text(json.dumps({**base, "threshold_rule": rule}))
        out = tmp_path / rule
        assert main(["train", str(pair_data), "--out", str(out), "--config", str(settings)]) == 0
        cards[rule] = read_card(out)
        net, card = load_net(out)
        val = read_manifest(out / "split.json")["val"]
        labels = np.array([s.label for s in val])
        scores[rule] = view_scores(
            net, load_images(val, card.preset), preset=card.preset, device="cpu", views=1
        )
        assert json.loads((out / "config.json").read_text())["threshold_rule"] == rule

    # Same seed, same split, same training: the two runs differ only in where the threshold goes.
    np.testing.assert_allclose(scores["margin"], scores["highest"], atol=1e-6)
    weakest_defect = float(scores["highest"][labels == 1].min())
    highest, margin = cards["highest"], cards["margin"]
    assert highest.metrics["threshold_rule"] == "highest" and margin.metrics["threshold_rule"] == "margin"
    assert highest.threshold == pytest.approx(weakest_defect, abs=1e-6)
    assert highest.threshold == pytest.approx(highest.metrics["threshold_highest"], abs=1e-9)
    assert margin.metrics["threshold_highest"] == pytest.approx(highest.threshold, abs=1e-6)
    assert highest.threshold >= margin.threshold
    # Both catch every validation defect; "margin" sits strictly inside the gap between the
    # weakest defect and the good part scoring next below it (these seeded parts have one).
    assert highest.metrics["val_fnr_at_threshold"] == margin.metrics["val_fnr_at_threshold"] == 0.0
    below = scores["margin"][(labels == 0) & (scores["margin"] < weakest_defect)]
    assert below.size > 0
    assert below.max() < margin.threshold < highest.threshold
