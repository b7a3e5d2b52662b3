"""Grad-CAM inside the forward pass equals pytorch-grad-cam's GradCAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from core.bundle import load_net
from core.explain import normalise_cams, score_and_cam
from core.imageio import read_image
from core.models import build_model, cam_target_layer


def _reference(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with GradCAM(model=net, target_layers=[cam_target_layer(net)]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(1)] * len(x))


def _ours(net: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    module = score_and_cam(net).eval()
    with torch.inference_mode():
        prob, raw = module(x)
    return prob.numpy(), normalise_cams(raw.numpy(), x.shape[-1])


def test_trained_tiny_model_matches_pytorch_grad_cam(tiny_model: Path, pair_data: Path) -> None:
    net, card = load_net(tiny_model)
    images = [read_image(p) for p in sorted((pair_data / "bad").glob("*.png"))[:6]]
    x = torch.from_numpy(card.preset.batch(images))
    prob, ours = _ours(net, x)
    ref = _reference(net, x)
    assert ours.shape == ref.shape == (6, 64, 64)
    assert np.abs(ours - ref).max() <= 1e-3
    with torch.inference_mode():
        expected = torch.softmax(net(x), 1)[:, 1].numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("architecture", "size"), [("mobilenet_v3_small", 128), ("mobilenet_v3_large", 128), ("resnet18", 128)]
)
def test_torchvision_heads_match_pytorch_grad_cam(architecture: str, size: int) -> None:
    torch.manual_seed(0)
    net = build_model(architecture).eval()
    x = torch.randn(3, 1, size, size)
    _, ours = _ours(net, x)
    assert np.abs(ours - _reference(net, x)).max() <= 1e-3


def test_inspector_single_and_batch_agree_and_judge_at_the_threshold(
    tiny_model: Path, pair_data: Path
) -> None:
    from core.inference import Inspector
    from core.types import Verdict

    images = [read_image(p) for p in sorted((pair_data / "good").glob("*.png"))[:4]]
    inspector = Inspector(tiny_model)
    assert inspector.device == ("cuda" if torch.cuda.is_available() else "cpu")
    batch = inspector.inspect_batch(images)
    single = [inspector.inspect(img) for img in images]
    for a, b in zip(batch, single, strict=True):
        assert a.heatmap.dtype == np.uint8 and a.heatmap.shape == (64, 64)
        assert abs(a.score - b.score) < 1e-5
        assert np.abs(a.heatmap.astype(int) - b.heatmap.astype(int)).max() <= 1
    middle = float(np.median([r.score for r in batch]))
    inspector.set_threshold(middle)
    verdicts = [inspector.inspect(img).verdict for img in images]
    assert verdicts == [Verdict.BAD if r.score >= middle else Verdict.GOOD for r in batch]
    with pytest.raises(ValueError):
        inspector.set_threshold(1.5)
