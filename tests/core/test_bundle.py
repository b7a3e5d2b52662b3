"""Model bundles: a trained net goes to disk and comes back scoring the same; tampering is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.imaging.decode import read_image
from core.imaging.preprocess import Preset
from core.inference.inspector import Inspector
from core.model.architectures import build_model
from core.model.bundle import CARD_FILE, BundleError, load_net, read_card, save_bundle
from core.training.data import data_hash, read_manifest, scan_folder
from core.training.epochs import evaluate_scores, load_images, make_loss, train_one_epoch

PRESET = Preset(input_size=64, channels=1)


@pytest.fixture(scope="module")
def trained_net(pair_data: Path) -> tuple[torch.nn.Module, list[Any]]:
    """A tiny_cnn after one real epoch on the generated parts (weights and BatchNorm statistics moved)."""
    torch.manual_seed(4)
    samples = scan_folder(pair_data)
    images = load_images(samples, PRESET)
    labels = np.array([s.label for s in samples], dtype=np.int64)
    net = build_model("tiny_cnn", channels=1)
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda _step: 1.0)
    train_one_epoch(
        net, images, labels, preset=PRESET, loss_fn=make_loss(labels, 1.0, "cpu"), optimiser=optimiser,
        scheduler=scheduler, batch_size=16, rng=np.random.default_rng(4), do_augment=False, device="cpu",
    )  # fmt: skip
    return net.eval(), samples


def _card_fields(samples: list[Any]) -> dict[str, Any]:
    return {
        "name": "round-trip",
        "architecture": "tiny_cnn",
        "input_size": PRESET.input_size,
        "channels": 1,
        "mean": PRESET.mean,
        "std": PRESET.std,
        "normalisation": PRESET.normalisation,
        "threshold": 0.4242,
        "views": 1,
        "pooling": "avg",
        "training_data_hash": data_hash(samples),
        "metrics": {"best_epoch": 1, "val_auc": 0.875},
    }


def test_a_saved_bundle_loads_back_to_the_same_net_and_scores(
    trained_net: tuple[torch.nn.Module, list[Any]], pair_data: Path, tmp_path: Path
) -> None:
    net, samples = trained_net
    paths = sorted((pair_data / "bad").glob("*.png"))[:6] + sorted((pair_data / "good").glob("*.png"))[:6]
    raw = [read_image(p) for p in paths]
    resized = np.stack([PRESET.resize(image) for image in raw])
    original, _ = evaluate_scores(net, resized, preset=PRESET, device="cpu")
    # Scores that differ from part to part and from an untrained net's: equal scores below then
    # mean the weights came back, not that any net would have matched.
    assert np.ptp(original) > 1e-3
    fresh, _ = evaluate_scores(build_model("tiny_cnn").eval(), resized, preset=PRESET, device="cpu")
    assert not np.allclose(fresh, original, atol=1e-3)

    fields = _card_fields(samples)
    saved_card = save_bundle(net, tmp_path / "bundle", **fields)
    loaded, card = load_net(tmp_path / "bundle")

    # The card on disk is the card written, with every field as given.
    assert card == saved_card == read_card(tmp_path / "bundle")
    assert {name: getattr(card, name) for name in fields} == fields
    assert card.class_names == ("good", "bad") and len(card.weights_sha256) == 64

    # Every tensor came back, BatchNorm running statistics included.
    state, back = net.state_dict(), loaded.state_dict()
    assert state.keys() == back.keys()
    assert all(torch.equal(state[k].cpu(), back[k]) for k in state)
    again, _ = evaluate_scores(loaded, resized, preset=PRESET, device="cpu")
    np.testing.assert_allclose(again, original, atol=1e-6)

    # The station's way in: the Inspector, from the raw images through the card's preset.
    with_inspector = [i.score for i in Inspector(tmp_path / "bundle", backend="torch").inspect_batch(raw)]
    np.testing.assert_allclose(with_inspector, original, atol=1e-5)

    # Saved again from the loaded net: byte for byte the same weights.
    resaved = save_bundle(loaded, tmp_path / "again", **fields)
    assert resaved.weights_sha256 == card.weights_sha256


def test_a_trained_bundle_card_says_how_it_was_made(tiny_model: Path) -> None:
    card = read_card(tiny_model)
    config = json.loads((tiny_model / "config.json").read_text())
    assert (card.architecture, card.input_size, card.channels) == (
        config["architecture"], config["input_size"], config["channels"],
    )  # fmt: skip
    assert card.class_names == ("good", "bad")
    assert card.metrics["threshold_rule"] == config["threshold_rule"] == "margin"
    assert 0.0 < card.threshold <= card.metrics["threshold_highest"]  # at or below the weakest defect
    train_split = read_manifest(tiny_model / "split.json")["train"]
    assert card.training_data_hash == data_hash(train_split)
    epochs = (tiny_model / "epochs.csv").read_text().splitlines()
    assert len(epochs) == 1 + card.metrics["epochs_run"]


def test_tampered_weights_are_refused(tampered_model: Path) -> None:
    with pytest.raises(BundleError, match="does not match"):
        Inspector(tampered_model)


def test_card_with_unknown_fields_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "odd"
    shutil.copytree(tiny_model, copy)
    doc = json.loads((copy / CARD_FILE).read_text())
    doc["loader"] = "pickle"
    (copy / CARD_FILE).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="unreadable model card"):
        read_card(copy)


def test_missing_bundle_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a model bundle"):
        read_card(tmp_path)
