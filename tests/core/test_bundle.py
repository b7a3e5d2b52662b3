"""Model bundles reload to the same probabilities and refuse tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.imaging.decode import read_image
from core.inference.inspector import Inspector
from core.model.bundle import CARD_FILE, BundleError, read_card


def test_bundle_reloads_to_the_same_probabilities(tiny_model: Path, pair_data: Path, tmp_path: Path) -> None:
    images = [read_image(p) for p in sorted((pair_data / "bad").glob("*.png"))[:5]]
    first = [r.score for r in Inspector(tiny_model).inspect_batch(images)]
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    again = [r.score for r in Inspector(copy).inspect_batch(images)]
    np.testing.assert_allclose(first, again, atol=1e-6)
    card = read_card(copy)
    assert card.architecture == "tiny_cnn" and card.input_size == 64 and card.channels == 1
    assert card.class_names == ("good", "bad")
    assert 0.0 <= card.threshold <= 1.0
    assert len(card.training_data_hash or "") == 64
    assert (tiny_model / "config.json").is_file() and (tiny_model / "epochs.csv").is_file()
    assert (tiny_model / "split.json").is_file()


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
