"""The Inspector's backends and the ``predict`` command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.imaging.decode import read_image


def test_backend_choice_is_validated(tiny_model: Path) -> None:
    from core.inference.backends import resolve_backend
    from core.inference.inspector import Inspector

    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend(tiny_model, "tensorrt")
    with pytest.raises(ValueError, match="threshold"):
        Inspector(tiny_model, backend="torch", threshold=2.0)


def test_inspect_preprocessed_equals_inspect_batch(tiny_model: Path, pair_data: Path) -> None:
    from core.inference.inspector import Inspector

    images = [read_image(p) for p in sorted((pair_data / "bad").glob("*.png"))[:3]]
    with Inspector(tiny_model, backend="torch", device="cpu", threshold=0.25) as inspector:
        assert (inspector.backend, inspector.device) == ("torch", "cpu")
        a = inspector.inspect_batch(images)
        b = inspector.inspect_preprocessed(inspector.preset.batch(images))
    for x, y in zip(a, b, strict=True):
        assert x.score == pytest.approx(y.score, abs=1e-6)
        assert np.array_equal(x.heatmap, y.heatmap)
        assert x.threshold == y.threshold == 0.25
        assert x.latency_ms > 0


def test_predict_prints_one_json_line_per_image_and_writes_overlays(
    tiny_model: Path, pair_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    images = sorted((pair_data / "bad").glob("*.png"))[:2]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    out = tmp_path / "overlays"
    status = main(
        ["predict", str(tiny_model), *map(str, images), str(broken), "--backend", "torch",
         "--threshold", "0.5", "--heatmap-dir", str(out)]
    )  # fmt: skip
    assert status == 1  # one image could not be inspected
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"] for line in lines] == [*map(str, images), str(broken)]
    for line in lines[:2]:
        assert set(line) == {"path", "score", "verdict", "threshold", "latency_ms", "heatmap", "cam"}
        assert line["verdict"] == ("bad" if line["score"] >= 0.5 else "good")
        assert line["threshold"] == 0.5
        overlay = cv2.imread(line["heatmap"])
        assert overlay.shape == (128, 128, 3)  # the part's own resolution
    assert lines[2]["verdict"] == "not_inspected" and "reason" in lines[2]
