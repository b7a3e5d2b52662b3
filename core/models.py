"""Classifier architectures, each split into features -> global pooling -> head.

The split is what makes Grad-CAM nearly free: the target layer is the end of ``features``, and
the gradient of the bad logit reaches it only through the average pooling and the small ``head``
(see ``core.explain``). Class index 0 is good, 1 is bad.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

ARCHITECTURES: tuple[str, ...] = (
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "resnet18",
    "resnet50",
    "tiny_cnn",
)
CLASS_NAMES: tuple[str, str] = ("good", "bad")
BAD_INDEX = 1


def _inspection_net_class() -> type:
    import torch
    from torch import nn

    class InspectionNet(nn.Module):
        """``head(flatten(avgpool(features(x))))``; ``features[-1]`` is the Grad-CAM layer."""

        def __init__(self, features: nn.Sequential, head: nn.Sequential, pool: str = "avg") -> None:
            super().__init__()
            self.features = features
            # Global max pooling lets one small defect decide; Grad-CAM's channel weights are
            # the same for either pooling (see core.explain).
            self.pool = nn.AdaptiveMaxPool2d(1) if pool == "max" else nn.AdaptiveAvgPool2d(1)
            self.head = head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.flatten(self.pool(self.features(x)), 1))

    return InspectionNet


_NET_CLASS: type | None = None


def inspection_net(features: Any, head: Any, pool: str = "avg") -> nn.Module:
    global _NET_CLASS
    if _NET_CLASS is None:
        _NET_CLASS = _inspection_net_class()
    return _NET_CLASS(features, head, pool)  # type: ignore[no-any-return]


def _adapt_first_conv(conv: nn.Conv2d, channels: int) -> nn.Conv2d:
    """Make the stem take ``channels`` inputs; pretrained RGB filters are summed to one gray."""
    import torch
    from torch import nn

    if conv.in_channels == channels:
        return conv
    new = nn.Conv2d(
        channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        if channels == 1:
            new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)  # type: ignore[union-attr]
    return new


def build_model(architecture: str, *, channels: int = 1, pretrained: str | None = None) -> nn.Module:
    """Build a two-class ``InspectionNet``.

    Args:
        architecture: one of ``ARCHITECTURES``.
        channels: 1 for grayscale (default), 3 for RGB.
        pretrained: path of an ImageNet state dict (``.pth`` loaded with ``weights_only=True``,
            or ``.safetensors``) for the torchvision architecture; nothing is downloaded.
    """
    from torch import nn
    from torchvision import models as tvm

    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")

    if architecture == "tiny_cnn":
        # For tests and the demo: small enough to train in seconds on two cores.
        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        features = nn.Sequential(
            block(channels, 16), block(16, 32), block(32, 48), block(48, 64), block(64, 96)
        )
        head = nn.Sequential(nn.Linear(96, 2))
        return inspection_net(features, head, pool="avg")

    constructor = getattr(tvm, architecture)
    base = constructor(weights=None)
    if pretrained:
        base.load_state_dict(_load_state_dict(pretrained))
    if architecture.startswith("mobilenet"):
        base.features[0][0] = _adapt_first_conv(base.features[0][0], channels)
        last: nn.Linear = base.classifier[-1]
        base.classifier[-1] = nn.Linear(last.in_features, 2)
        return inspection_net(base.features, base.classifier)
    base.conv1 = _adapt_first_conv(base.conv1, channels)
    features = nn.Sequential(
        base.conv1, base.bn1, base.relu, base.maxpool, base.layer1, base.layer2, base.layer3, base.layer4
    )
    head = nn.Sequential(nn.Linear(base.fc.in_features, 2))
    return inspection_net(features, head)


def _load_state_dict(path: str) -> dict[str, Any]:
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    return state


def cam_target_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations Grad-CAM explains: the last block of the features."""
    return model.features[-1]  # type: ignore[index,return-value]
