"""Grad-CAM inside the forward pass.

For the target layer at the end of the features, Grad-CAM's channel weights are the mean over
positions of d(bad logit)/d(activations). The activations reach the logit only through global
pooling and the head. With average pooling that gradient is ``g / (H * W)`` at every position;
with max pooling it is ``g`` at the maximum and 0 elsewhere. Either way its mean over positions
is ``g / (H * W)``, where ``g = d(bad logit)/d(pooled vector)`` — the gradient of a small MLP
with respect to its input.
``g`` is computed here analytically for heads made of Linear, ReLU, Hardswish, Dropout (identity
at inference) and Identity layers: plain tensor algebra that exports to ONNX and costs a few
matrix-vector products instead of a backward pass through the whole network.

The result equals pytorch-grad-cam's ``GradCAM`` on the same layer (tested to 1e-3 after the
same normalisation; see ``normalise_cams``).

Views (test-time augmentation): a round part looks the same flipped or transposed, so a model can
also be asked about 4 or 8 such views of each part in the same batch. The score is the mean of
the views' probabilities and the heatmap the mean of their cams, each turned back to the part's
own orientation first. On the casting photographs this lifted the hardest defects' scores (see
README); it costs as many forward passes as views.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

VIEWS = (1, 4, 8)  # the image; + its flips; + the flips of its transpose


def view_transforms(views: int) -> list[tuple[bool, tuple[int, ...]]]:
    """(transpose first?, axes to flip afterwards) for each view, axes counted from the end.

    A view of image ``x`` [..., H, W] is ``flip(transpose(x) if t else x, axes)``; every step is
    its own inverse, so a view's cam is turned back by flipping the same axes, then transposing.
    """
    if views not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}, not {views}")
    flips: list[tuple[int, ...]] = [(), (-1,), (-2,), (-2, -1)]
    out = [(False, f) for f in flips[: 1 if views == 1 else 4]]
    if views == 8:
        out += [(True, f) for f in flips]
    return out


def _cam_module_class() -> type:
    import torch
    from torch import nn

    class ScoreAndCam(nn.Module):
        """Wraps an ``InspectionNet``: ``x -> (bad probability [N], raw cam [N, h, w])``."""

        def __init__(self, net: nn.Module, target_index: int = 1, views: int = 1) -> None:
            super().__init__()
            self.net = net
            self.target_index = target_index
            self.transforms = view_transforms(views)
            for layer in net.head:  # type: ignore[union-attr]
                if not isinstance(layer, (nn.Linear, nn.ReLU, nn.Hardswish, nn.Dropout, nn.Identity)):
                    raise TypeError(
                        f"analytic Grad-CAM does not support a {type(layer).__name__} in the head"
                    )

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if len(self.transforms) == 1:
                return self.one_view(x)
            n = x.shape[0]
            batch = torch.cat([_turn(x, t, axes) for t, axes in self.transforms])
            prob, cam = self.one_view(batch)
            cams = [
                _turn_back(cam[i * n : (i + 1) * n], t, axes) for i, (t, axes) in enumerate(self.transforms)
            ]
            return prob.reshape(len(self.transforms), n).mean(0), torch.stack(cams).mean(0)

        def one_view(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.from_features(self.net.features(x))  # type: ignore[operator]

        def from_features(self, acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """The last feature map -> (bad probability, raw cam); the anomaly model taps earlier maps."""
            h = torch.flatten(self.net.pool(acts), 1)  # type: ignore[operator]
            saved: list[tuple[nn.Module, torch.Tensor]] = []
            for layer in self.net.head:  # type: ignore[union-attr]
                if isinstance(layer, (nn.Linear, nn.ReLU, nn.Hardswish)):
                    saved.append((layer, h))
                    # Out of place: torchvision's heads use inplace=True activations, which would
                    # overwrite the pre-activation that the backward step below needs.
                    if isinstance(layer, nn.Hardswish):
                        h = torch.nn.functional.hardswish(h)
                    elif isinstance(layer, nn.ReLU):
                        h = torch.relu(h)
                    else:
                        h = layer(h)
            logits = h
            # Backward through the head by hand: start from d(target logit)/d(logits).
            g = torch.zeros_like(logits)
            g[:, self.target_index] = 1.0
            for layer, z in reversed(saved):
                if isinstance(layer, nn.Linear):
                    g = g @ layer.weight
                elif isinstance(layer, nn.ReLU):
                    g = g * (z > 0).to(g.dtype)
                else:  # Hardswish, with PyTorch's own boundary conventions
                    slope = torch.where(z < -3.0, torch.zeros_like(z), z / 3.0 + 0.5)
                    g = g * torch.where(z > 3.0, torch.ones_like(z), slope)
            spatial = acts.shape[2] * acts.shape[3]
            cam = torch.relu(torch.einsum("nc,nchw->nhw", g, acts) / spatial)
            prob = torch.softmax(logits, dim=1)[:, self.target_index]
            return prob, cam

    def _turn(x: torch.Tensor, transpose: bool, axes: tuple[int, ...]) -> torch.Tensor:
        if transpose:
            x = x.transpose(-2, -1)
        return torch.flip(x, axes) if axes else x

    def _turn_back(cam: torch.Tensor, transpose: bool, axes: tuple[int, ...]) -> torch.Tensor:
        if axes:
            cam = torch.flip(cam, axes)
        return cam.transpose(-2, -1) if transpose else cam

    return ScoreAndCam


_CLASS: type | None = None


def score_and_cam(net: nn.Module, target_index: int = 1, *, views: int = 1) -> nn.Module:
    """The module that computes score and raw Grad-CAM together in one forward pass.

    Args:
        net: An ``InspectionNet`` in eval mode.
        target_index: The class explained (1 = bad).
        views: 1, 4 or 8 views of each part averaged (see the module's docstring).
    """
    global _CLASS
    if _CLASS is None:
        _CLASS = _cam_module_class()
    return _CLASS(net, target_index, views)  # type: ignore[no-any-return]


def _minmax(cam: np.ndarray) -> np.ndarray:
    cam = cam - cam.min()
    return np.asarray(cam / (1e-7 + cam.max()), dtype=np.float32)


def normalise_cams(raw: np.ndarray, size: int) -> np.ndarray:
    """Raw cams [N, h, w] -> heatmaps [N, size, size] in 0..1.

    Follows pytorch-grad-cam's steps (min-max, bilinear resize to the input, min-max again) so
    the two agree.
    """
    out = np.empty((raw.shape[0], size, size), dtype=np.float32)
    for i, cam in enumerate(raw.astype(np.float32, copy=False)):
        out[i] = _minmax(cv2.resize(_minmax(cam), (size, size)))
    return out


def to_uint8(heatmaps: np.ndarray) -> np.ndarray:
    """0..1 float heatmaps -> the 8-bit form kept in the log."""
    return np.clip(heatmaps * 255.0 + 0.5, 0, 255).astype(np.uint8)
