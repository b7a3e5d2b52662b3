"""Grad-CAM inside the forward pass equals pytorch-grad-cam's GradCAM, in PyTorch and in ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from core.imaging.decode import read_image
from core.imaging.preprocess import Preset
from core.model.architectures import ARCHITECTURES, build_model, cam_target_layer
from core.model.bundle import load_net
from core.model.explain import normalise_cams, score_and_cam, view_transforms

TRAIN_SIZE = 32  # a few optimisation steps at a small input ...
CHECK_SIZE = 96  # ... then checked at a larger one, where the cam has 3 x 3 cells


def _reference(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with GradCAM(model=net, target_layers=[cam_target_layer(net)]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(1)] * len(x))


def _ours(net: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    module = score_and_cam(net).eval()
    with torch.inference_mode():
        prob, raw = module(x)
    return prob.numpy(), normalise_cams(raw.numpy(), x.shape[-1])


@pytest.fixture(scope="module")
def parts(pair_data: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Eight good and eight bad generated parts with their labels (1 = bad)."""
    good = [read_image(p) for p in sorted((pair_data / "good").glob("*.png"))[:8]]
    bad = [read_image(p) for p in sorted((pair_data / "bad").glob("*.png"))[:8]]
    return good + bad, np.array([0] * len(good) + [1] * len(bad))


def _briefly_trained(architecture: str, images: list[np.ndarray], labels: np.ndarray) -> torch.nn.Module:
    """Two Adam steps at a small input, then batch-norm statistics taken from the parts.

    Without the last step the running statistics would still be their initial values after so
    few steps, and some networks would give an all-zero cam that matches anything.
    """
    torch.manual_seed(0)
    net = build_model(architecture)
    x = torch.from_numpy(Preset(input_size=TRAIN_SIZE).batch(images))
    y = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    order = torch.randperm(len(y))
    for step in range(2):
        idx = order[(step * 8) % len(y) :][:8]
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        optimiser.step()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: one pass gives the exact statistics
    with torch.no_grad():  # at the size the parity is checked at, as a real model would be used
        net(torch.from_numpy(Preset(input_size=CHECK_SIZE).batch(images[4:12])))
    return net.eval()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_trained_models_match_pytorch_grad_cam_in_torch_and_onnx(
    architecture: str, parts: tuple[list[np.ndarray], np.ndarray]
) -> None:
    from core.inference.backends import ort_session
    from core.inference.export import export_net
    from core.inference.onnx_bundle import INPUT_NAME

    images, labels = parts
    net = _briefly_trained(architecture, images, labels)
    check = [images[0], images[1], images[8], images[9]]  # two good, two bad
    x = torch.from_numpy(Preset(input_size=CHECK_SIZE).batch(check))
    ref = _reference(net, x)
    # Most cams must be real: an all-zero cam (no positive evidence for "bad") matches anything.
    assert sum(r.max() > 0.5 for r in ref) >= 2

    prob, ours = _ours(net, x)
    assert ours.shape == ref.shape == (4, CHECK_SIZE, CHECK_SIZE)
    assert np.abs(ours - ref).max() <= 1e-3
    with torch.inference_mode():
        expected = torch.softmax(net(x), 1)[:, 1].numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-6)

    session = ort_session(export_net(net, input_size=CHECK_SIZE), device="cpu")
    ort_prob, ort_raw = session.run(None, {INPUT_NAME: x.numpy()})
    assert np.abs(normalise_cams(ort_raw, CHECK_SIZE) - ref).max() <= 1e-3
    np.testing.assert_allclose(ort_prob, expected, atol=1e-4)


def test_trained_tiny_bundle_matches_pytorch_grad_cam(tiny_model: Path, pair_data: Path) -> None:
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


@pytest.mark.parametrize("views", [4, 8])
def test_views_average_the_scores_and_the_turned_back_cams_of_each_view(
    views: int, tiny_model: Path, pair_data: Path
) -> None:
    net, card = load_net(tiny_model)
    images = [read_image(p) for p in sorted((pair_data / "bad").glob("*.png"))[:3]]
    x = card.preset.batch(images)  # N x 1 x S x S
    one = score_and_cam(net).eval()
    expected_scores, expected_cams = [], []
    # Each view made and turned back with numpy, independently of the module's torch code.
    for transpose, axes in view_transforms(views):
        view = np.swapaxes(x, -2, -1) if transpose else x
        view = np.flip(view, axes) if axes else view
        with torch.inference_mode():
            prob, raw = (t.numpy() for t in one(torch.from_numpy(np.ascontiguousarray(view))))
        raw = np.flip(raw, axes) if axes else raw
        expected_scores.append(prob)
        expected_cams.append(np.swapaxes(raw, -2, -1) if transpose else raw)
    with torch.inference_mode():
        prob, raw = (t.numpy() for t in score_and_cam(net, views=views).eval()(torch.from_numpy(x)))
    np.testing.assert_allclose(prob, np.mean(expected_scores, axis=0), atol=1e-6)
    np.testing.assert_allclose(raw, np.mean(expected_cams, axis=0), atol=1e-5)
    # The views really differ: the model is not flip-invariant, so the mean is not view 1.
    assert np.abs(prob - expected_scores[0]).max() > 1e-4
    assert len(view_transforms(views)) == views
    with pytest.raises(ValueError, match="views must be one of"):
        view_transforms(2)


def test_max_pooled_and_average_pooled_heads_share_the_channel_weights() -> None:
    """The analytic weights hold for either global pooling (see core.model.explain)."""
    torch.manual_seed(1)
    net = build_model("tiny_cnn").eval()
    x = torch.randn(2, 1, 96, 96)
    _, max_pooled = _ours(net, x)
    assert np.abs(max_pooled - _reference(net, x)).max() <= 1e-3
    net.pool = torch.nn.AdaptiveAvgPool2d(1)
    _, avg_pooled = _ours(net, x)
    assert np.abs(avg_pooled - _reference(net, x)).max() <= 1e-3


def test_unsupported_head_layer_is_refused() -> None:
    net = build_model("tiny_cnn")
    net.head.append(torch.nn.Sigmoid())
    with pytest.raises(TypeError, match="Sigmoid"):
        score_and_cam(net)


def test_inspector_single_and_batch_agree_and_judge_at_the_threshold(
    tiny_model: Path, pair_data: Path
) -> None:
    from core.common.types import Verdict
    from core.inference.inspector import Inspector

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
