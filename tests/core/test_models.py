"""Model construction details that training on a line's small datasets depends on."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from core.model.architectures import OWN_ARCHITECTURES, build_model


@pytest.mark.parametrize("architecture", ["mobilenet_v3_small", "mobilenet_v3_large"])
def test_mobilenet_batchnorm_statistics_follow_the_weights(architecture: str) -> None:
    # torchvision's 0.01 (for ImageNet's thousands of steps per epoch) left the casting model
    # calling every part good or every part bad in eval mode for many epochs.
    net = build_model(architecture, channels=1)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum == pytest.approx(0.1) for m in norms)
    assert net.features[0][0].in_channels == 1  # type: ignore[index]


def test_fullres_cnn_keeps_the_input_resolution_in_its_first_stage() -> None:
    # A two-pixel pit must reach the first filters unsampled; the stride-2 stems of the
    # torchvision nets halve the picture before any filter has looked at it.
    import torch

    net = build_model("fullres_cnn", channels=1).eval()
    x = torch.zeros(1, 1, 96, 96)
    features = net.features
    assert isinstance(features, nn.Sequential)
    with torch.no_grad():
        first = features[0](x)
        last = features(x)
    assert first.shape[-2:] == (96, 96)
    assert last.shape[-2:] == (6, 6)


@pytest.mark.parametrize("architecture", OWN_ARCHITECTURES)
def test_our_own_nets_refuse_pretrained_weights(architecture: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_model(architecture, pretrained=str(tmp_path / "imagenet.pth"))
