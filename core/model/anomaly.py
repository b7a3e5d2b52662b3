"""The good-only second opinion: a per-location Gaussian of the classifier's own features (PaDiM-style).

A classifier only knows the defects it was shown. This model knows only what good parts look
like: at each cell of an intermediate feature map of the trained classifier it keeps the mean
and the covariance of the good training parts' feature vectors, and scores a part by how far
(Mahalanobis distance) each of its cells is from that Gaussian. The map of those distances says
where the part departs from good parts; its largest cell is the part's anomaly score.

Why these features: no ImageNet weights exist here, and the classifier's own features are
trained on the line's parts. A probe on the casting photographs (seed regime) found two late
blocks of MobileNetV3-Large (``features[12]``, 14 x 14 cells at 224 px, and ``features[15]``,
7 x 7, brought to the 14 x 14 grid) gave an AUC of 0.996 on withheld photographs on their own,
and ranked the pitted part the classifier missed above 99% of the good parts; an earlier block
alone (``features[6]``) gave 0.89. ``DEFAULT_LAYERS`` holds the choice for each architecture.

Cost on the line: the features are the ones the classifier computes anyway (one forward pass,
tapped on the way); the extra work is one D x D matrix product per cell (``ScoreCamAnomaly``).
With views (``ModelCard.views``) every view is scored and its map turned back to the part's own
orientation before the maps are averaged, as the Grad-CAM is.

Storage: ``anomaly.safetensors`` beside the classifier's weights (``channels`` [D] int64, the
feature channels used; ``mean`` [L, D] and ``precision`` [L, D, D] float32, L = cells) and an
``AnomalyCard`` inside the model card holding its SHA-256, so it is hashed like the rest and
loaded without executing code. Its threshold is chosen on validation good parts for a
false-reject budget (``threshold_for_budget``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.common.metrics import threshold_for_budget
from core.model.anomaly_card import ANOMALY_FILE, TENSOR_NAMES, AnomalyCard
from core.model.bundle import load_anomaly_tensors as load_tensors

__all__ = [
    "ANOMALY_FILE",
    "DEFAULT_LAYERS",
    "RIDGE",
    "TENSOR_NAMES",
    "AnomalyCard",
    "GaussianFit",
    "anomaly_head",
    "anomaly_heatmap",
    "layers_for",
    "load_combined",
    "load_tensors",
    "save_tensors",
    "score_cam_anomaly",
    "tap",
    "threshold_for_budget",
]

if TYPE_CHECKING:
    import torch
    from torch import nn

# The blocks of ``InspectionNet.features`` whose outputs are modelled, per architecture: two late
# blocks, the later one brought to the grid of the earlier (see the module's docstring).
DEFAULT_LAYERS: dict[str, tuple[int, ...]] = {
    "mobilenet_v3_large": (12, 15),
    "mobilenet_v3_small": (8, 11),
    "resnet18": (5, 6),
    "resnet50": (5, 6),
    "tiny_cnn": (1, 2),
    "fullres_cnn": (3, 4),
}
# Ridge added to each cell's covariance, relative to the mean variance of all cells: a cell whose
# good parts barely vary (the background) would otherwise give an almost singular matrix, and the
# distance of any speck of noise there would be huge.
RIDGE = 0.01


def layers_for(architecture: str) -> tuple[int, ...]:
    """The default tapped blocks of an architecture."""
    try:
        return DEFAULT_LAYERS[architecture]
    except KeyError:
        raise ValueError(f"no anomaly layers known for {architecture!r}") from None


def tap(
    net: nn.Module, x: torch.Tensor, layers: tuple[int, ...], grid: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``net.features`` on ``x`` once: (the tapped maps joined on one grid, the last map).

    The tapped maps are brought to the grid of the first one (nearest neighbour: exact for the
    2x steps between blocks) and joined channel-wise: [N, C, h, w]. ``grid`` gives that grid as
    plain numbers (a constant of the exported graph) when it is known.
    """
    import torch

    maps = []
    acts = x
    for index, block in enumerate(net.features):  # type: ignore[arg-type]
        acts = block(acts)
        if index in layers:
            maps.append(acts)
    size = grid if grid is not None else (int(maps[0].shape[-2]), int(maps[0].shape[-1]))
    joined = [maps[0]] + [torch.nn.functional.interpolate(m, size=size, mode="nearest") for m in maps[1:]]
    return torch.cat(joined, dim=1), acts


class GaussianFit:
    """Running sums of the cells' feature vectors, so any number of good parts fits in memory.

    ``add`` takes joined maps [N, C, h, w]; ``finish`` gives the tensors of ``ANOMALY_FILE``.
    Sums are kept in float64: the covariance is their difference, and float32 loses it.
    """

    def __init__(self) -> None:
        self.count = 0
        self._sum: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None
        self.grid: tuple[int, int] = (0, 0)

    def add(self, joined: torch.Tensor) -> None:
        import torch

        n, c, h, w = joined.shape
        cells = joined.detach().to(torch.float64).reshape(n, c, h * w).permute(2, 0, 1)  # [L, N, C]
        if self._sum is None:
            self.grid = (int(h), int(w))
            self._sum = torch.zeros(h * w, c, dtype=torch.float64)
            self._outer = torch.zeros(h * w, c, c, dtype=torch.float64)
        assert self._outer is not None
        self._sum += cells.sum(1)
        self._outer += torch.bmm(cells.transpose(1, 2), cells)
        self.count += int(n)

    def finish(self, dims: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
        """Mean and precision of each cell over ``dims`` channels (all when None or more).

        Channels are kept at random (seeded), as PaDiM does: it costs little accuracy and the
        precision matrices shrink with the square of the channels kept.

        Raises:
            ValueError: Fewer than two parts were added.
        """
        import torch

        if self._sum is None or self._outer is None or self.count < 2:
            raise ValueError("the anomaly model needs at least two good images")
        channels_total = self._sum.shape[1]
        if dims is None or dims >= channels_total:
            channels = np.arange(channels_total, dtype=np.int64)
        else:
            rng = np.random.default_rng(seed)
            channels = np.sort(rng.choice(channels_total, size=dims, replace=False)).astype(np.int64)
        index = torch.from_numpy(channels)
        mean = self._sum[:, index] / self.count
        outer = self._outer[:, index][:, :, index] / self.count
        cov = (outer - mean[:, :, None] * mean[:, None, :]) * (self.count / (self.count - 1))
        d = len(channels)
        # One ridge for every cell, from the variance over all cells: a cell of bare background
        # varies so little that a ridge of its own would let a part edge shifted into it score
        # as a huge anomaly (measured on generated parts: the good parts' scores grew a long tail).
        ridge = RIDGE * float(torch.diagonal(cov, dim1=1, dim2=2).mean().clamp(min=1e-6))
        cov = cov + ridge * torch.eye(d, dtype=torch.float64)
        precision = torch.linalg.inv(cov)
        return {
            "channels": channels,
            "mean": mean.to(torch.float32).numpy(),
            "precision": precision.to(torch.float32).numpy(),
        }


def save_tensors(folder: Path, tensors: dict[str, np.ndarray]) -> str:
    """Write ``ANOMALY_FILE`` (safetensors) atomically; returns its SHA-256."""
    from safetensors.numpy import save

    from core.common.fileio import sha256_bytes, write_atomic

    data = save({k: np.ascontiguousarray(tensors[k]) for k in TENSOR_NAMES})
    write_atomic(Path(folder) / ANOMALY_FILE, data)
    return sha256_bytes(data)


def anomaly_heatmap(maps: np.ndarray, threshold: float, size: int) -> np.ndarray:
    """Anomaly maps [N, h, w] -> 8-bit heatmaps [N, size, size] on a fixed scale.

    Unlike the Grad-CAM, which is scaled to its own maximum, the scale is the threshold's: a cell
    at the threshold is mid-grey (128) and twice the threshold or more is white, so a good part's
    map stays dark and the map of a part the anomaly score rejected shows where.
    """
    import cv2

    out = np.empty((maps.shape[0], size, size), dtype=np.uint8)
    scale = 1.0 / (2.0 * max(threshold, 1e-12))
    for i, m in enumerate(maps.astype(np.float32, copy=False)):
        up = cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR)
        out[i] = np.clip(up * scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _module_classes() -> tuple[type, type]:
    import torch
    from torch import nn

    from core.model.explain import score_and_cam, view_transforms

    class AnomalyHead(nn.Module):
        """Joined maps [N, C, h, w] -> Mahalanobis distance of each cell [N, h, w]."""

        def __init__(self, tensors: dict[str, np.ndarray], grid: tuple[int, int]) -> None:
            super().__init__()
            self.grid = grid
            self.register_buffer("channels", torch.from_numpy(np.asarray(tensors["channels"], np.int64)))
            self.register_buffer("mean", torch.from_numpy(np.asarray(tensors["mean"], np.float32)))
            self.register_buffer("precision", torch.from_numpy(np.asarray(tensors["precision"], np.float32)))

        def forward(self, joined: torch.Tensor) -> torch.Tensor:
            n = joined.shape[0]
            x = torch.index_select(joined, 1, self.channels)  # type: ignore[arg-type]
            cells = x.flatten(2).permute(2, 0, 1) - self.mean[:, None, :]  # type: ignore[index]  # [L, N, D]
            scaled = torch.bmm(cells, self.precision)  # type: ignore[arg-type]  # [L, N, D]
            dist = (scaled * cells).sum(-1).clamp(min=0.0).sqrt()  # [L, N]
            return dist.permute(1, 0).reshape(n, self.grid[0], self.grid[1])

    class ScoreCamAnomaly(nn.Module):
        """``x -> (bad probability [N], raw cam [N, h, w], anomaly score [N], anomaly map [N, h', w'])``.

        One pass through the classifier's features serves both opinions (see the module).
        """

        def __init__(self, net: nn.Module, head: nn.Module, layers: tuple[int, ...], views: int = 1) -> None:
            super().__init__()
            self.scorer = score_and_cam(net, views=1)
            self.head = head
            self.layers = tuple(layers)
            self.transforms = view_transforms(views)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            n = x.shape[0]
            batch = (
                torch.cat([_turn(x, t, axes) for t, axes in self.transforms])
                if len(self.transforms) > 1
                else x
            )
            grid = self.head.grid
            joined, acts = tap(self.scorer.net, batch, self.layers, grid)  # type: ignore[arg-type]
            prob, cam = self.scorer.from_features(acts)  # type: ignore[operator]
            amap = self.head(joined)
            if len(self.transforms) > 1:
                v = len(self.transforms)
                prob = prob.reshape(v, n).mean(0)
                cam = torch.stack(
                    [_turn_back(cam[i * n : (i + 1) * n], t, a) for i, (t, a) in enumerate(self.transforms)]
                ).mean(0)
                amap = torch.stack(
                    [_turn_back(amap[i * n : (i + 1) * n], t, a) for i, (t, a) in enumerate(self.transforms)]
                ).mean(0)
            return prob, cam, amap.flatten(1).amax(1), amap

    return AnomalyHead, ScoreCamAnomaly


def _turn(x: torch.Tensor, transpose: bool, axes: tuple[int, ...]) -> torch.Tensor:
    import torch

    if transpose:
        x = x.transpose(-2, -1)
    return torch.flip(x, axes) if axes else x


def _turn_back(m: torch.Tensor, transpose: bool, axes: tuple[int, ...]) -> torch.Tensor:
    import torch

    if axes:
        m = torch.flip(m, axes)
    return m.transpose(-2, -1) if transpose else m


_CLASSES: tuple[type, type] | None = None


def anomaly_head(tensors: dict[str, np.ndarray], grid: tuple[int, int]) -> nn.Module:
    """The scoring module of a fitted Gaussian (``GaussianFit.finish`` or ``load_tensors``)."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _module_classes()
    return _CLASSES[0](tensors, grid)  # type: ignore[no-any-return]


def score_cam_anomaly(
    net: nn.Module, head: nn.Module, layers: tuple[int, ...], *, views: int = 1
) -> nn.Module:
    """Classifier score, Grad-CAM, anomaly score and map in one forward pass (see the module)."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _module_classes()
    return _CLASSES[1](net, head, layers, views)  # type: ignore[no-any-return]


def load_combined(folder: Path, net: nn.Module, card: Any) -> nn.Module:
    """The one-pass module of a bundle whose card has an anomaly model (``card.anomaly``)."""
    anomaly: AnomalyCard = card.anomaly
    head = anomaly_head(load_tensors(folder, anomaly), anomaly.grid)
    return score_cam_anomaly(net, head, anomaly.layers, views=card.views)
