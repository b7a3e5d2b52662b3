"""Model construction details that training on a line's small datasets depends on."""

from __future__ import annotations

import pytest
from torch import nn

from core.models import build_model


@pytest.mark.parametrize("architecture", ["mobilenet_v3_small", "mobilenet_v3_large"])
def test_mobilenet_batchnorm_statistics_follow_the_weights(architecture: str) -> None:
    # torchvision's 0.01 (for ImageNet's thousands of steps per epoch) left the casting model
    # calling every part good or every part bad in eval mode for many epochs.
    net = build_model(architecture, channels=1)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum == pytest.approx(0.1) for m in norms)
    assert net.features[0][0].in_channels == 1  # type: ignore[index]
