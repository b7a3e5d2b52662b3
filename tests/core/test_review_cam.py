"""Other heatmap methods for reviewing one part, through pytorch-grad-cam on the bundle's model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.imaging.decode import read_image
from core.inference.inspector import Inspector
from core.model.review_cam import REVIEW_METHODS, Reviewer


def test_every_method_gives_an_8_bit_heatmap_and_gradcam_matches_the_station(
    tiny_model: Path, pair_data: Path
) -> None:
    image = read_image(sorted((pair_data / "bad").glob("*.png"))[0])
    reviewer = Reviewer(tiny_model, device="cpu")
    with Inspector(tiny_model, backend="torch", device="cpu") as inspector:
        station = inspector.inspect(image)
    size = reviewer.card.preset.input_size

    heatmaps = {}
    for method in REVIEW_METHODS:
        score, heatmap = reviewer.explain(image, method)
        assert score == pytest.approx(station.score, abs=1e-5)
        assert heatmap.shape == (size, size) and heatmap.dtype == np.uint8
        if heatmap.max() > 0:  # a method may find nothing for the bad class; then all zero
            assert heatmap.max() == 255 and heatmap.min() == 0
        heatmaps[method] = heatmap
    # The same Grad-CAM as the one computed in the station's forward pass.
    assert np.abs(heatmaps["gradcam"].astype(int) - station.heatmap).max() <= 1
    assert heatmaps["gradcam"].max() == 255
    # The methods are not all the same picture.
    assert any(not np.array_equal(heatmaps["gradcam"], h) for m, h in heatmaps.items() if m != "gradcam")
    with pytest.raises(ValueError, match="unknown heatmap method"):
        reviewer.explain(image, "magic")


def test_predict_writes_overlays_of_the_chosen_method(
    tiny_model: Path, pair_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    image = sorted((pair_data / "bad").glob("*.png"))[0]
    args = ["predict", str(tiny_model), str(image), "--backend", "torch"]
    assert main([*args, "--cam", "eigencam", "--heatmap-dir", str(tmp_path / "a")]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["cam"] == "eigencam" and cv2.imread(line["heatmap"]).shape == (128, 128, 3)
    assert main([*args, "--cam", "nonsense"]) == 2
    assert "unknown --cam" in capsys.readouterr().err
