"""Classifier architectures, each split into features -> global pooling -> head.

The split is what makes Grad-CAM nearly free: the target layer is the end of ``features``, and
the gradient of the bad logit reaches it only through the average pooling and the small ``head``
(see ``core.model.explain``). Class index 0 is good, 1 is bad.
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
    "fullres_cnn",
)
# Plain CNNs of our own (core.model.architectures._plain_cnn): no pretrained weights exist for them.
OWN_ARCHITECTURES: tuple[str, ...] = ("tiny_cnn", "fullres_cnn")
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
            # the same for either pooling (see core.model.explain).
            self.pool = nn.AdaptiveMaxPool2d(1) if pool == "max" else nn.AdaptiveAvgPool2d(1)
            self.head = head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.head(torch.flatten(self.pool(self.features(x)), 1))
            return logits

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


def build_model(
    architecture: str, *, channels: int = 1, pretrained: str | None = None, pooling: str = "avg"
) -> nn.Module:
    """Build a two-class ``InspectionNet``.

    Args:
        architecture: one of ``ARCHITECTURES``.
        channels: 1 for grayscale (default), 3 for RGB.
        pretrained: path of an ImageNet state dict (``.pth`` loaded with ``weights_only=True``,
            or ``.safetensors``) for the torchvision architecture; nothing is downloaded.
        pooling: ``avg`` (torchvision's) or ``max``: global max pooling lets the one cell that
            holds a small defect decide instead of being averaged with the whole part's. It has
            no weights, so the state dict is the same either way.
    """
    from torch import nn
    from torchvision import models as tvm

    if pooling not in ("avg", "max"):
        raise ValueError(f"unknown pooling {pooling!r}; choose avg or max")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")

    if architecture in OWN_ARCHITECTURES:
        if pretrained:
            raise ValueError(f"{architecture} is our own net: no pretrained weights exist for it")
        return _plain_cnn(architecture, channels, pooling)

    constructor = getattr(tvm, architecture)
    base = constructor(weights=None)
    if pretrained:
        base.load_state_dict(_load_state_dict(pretrained))
    if architecture.startswith("mobilenet"):
        # torchvision builds MobileNetV3 with BatchNorm momentum 0.01, tuned for ImageNet's
        # thousands of steps per epoch. On a line's dataset (~40 steps per epoch) the running
        # statistics then lag far behind the weights, and the model in eval mode calls every
        # part good or every part bad for many epochs (measured on the casting data: validation
        # AUC 0.56-0.78 over epochs 1-11 while the training loss fell from 0.63 to 0.27).
        # PyTorch's default 0.1 follows the weights; the saved weights are the same either way.
        for module in base.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1
        base.features[0][0] = _adapt_first_conv(base.features[0][0], channels)
        last: nn.Linear = base.classifier[-1]
        base.classifier[-1] = nn.Linear(last.in_features, 2)
        return inspection_net(base.features, base.classifier, pool=pooling)
    base.conv1 = _adapt_first_conv(base.conv1, channels)
    features = nn.Sequential(
        base.conv1, base.bn1, base.relu, base.maxpool, base.layer1, base.layer2, base.layer3, base.layer4
    )
    head = nn.Sequential(nn.Linear(base.fc.in_features, 2))
    return inspection_net(features, head, pool=pooling)


def _plain_cnn(architecture: str, channels: int, pooling: str) -> nn.Module:
    """The two plain (VGG-like) nets of our own; no pretrained weights exist for them."""
    import torch
    from torch import nn

    def conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    if architecture == "tiny_cnn":
        # For tests and the demo: small enough to train in well under a minute on two cores.
        # Three stages (1/2, 1/4, 1/8 of the input) and average pooling: each cell of the last
        # map sees about half the part's radius, so the net learns local "this does not belong
        # here" detectors, which it does much faster than whole-part ones (a deeper, global
        # version with max pooling reached a validation AUC of ~0.64 in the same time). The
        # last map is 16 x 16 at a 128 px input, which also makes the Grad-CAM finer.
        stages = [
            conv(channels, 16, 2),
            [*conv(16, 32, 2), *conv(32, 32)],
            [*conv(32, 64, 2), *conv(64, 64), *conv(64, 64)],
        ]
        width = 64
    else:
        # For defects of a few pixels (pits, pinholes): the first layer runs at the full input
        # resolution, where torchvision's nets start with a stride-2 stem and see a two-pixel pit
        # only through one strided filter. Five stages down to 1/16 (19 x 19 cells at the camera's
        # 300 px), each cell seeing about 90 px: local detectors, as in tiny_cnn. 1.2 M weights;
        # a training step costs about 1.5 times MobileNetV3-Large's at 224 px on a CPU when run at
        # 300 px (plain 3 x 3 convolutions suit the CPU libraries better than depthwise ones).
        stages = [
            conv(channels, 16),
            conv(16, 32, 2),
            [*conv(32, 64, 2), *conv(64, 64)],
            [*conv(64, 128, 2), *conv(128, 128)],
            [*conv(128, 256, 2), *conv(256, 256)],
        ]
        width = 256
    features = nn.Sequential(*(nn.Sequential(*stage) for stage in stages))
    head = nn.Sequential(nn.Linear(width, 2))
    # Channels-last weights make the CPU convolutions ~1.3x faster, in training and on the
    # line; the values (and the saved state dict) are the same.
    return inspection_net(features, head, pool=pooling).to(memory_format=torch.channels_last)


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
