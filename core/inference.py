"""The Inspector: bad probability, verdict and Grad-CAM heatmap for every part, in one pass.

Backends share one small interface, ``run(batch) -> (scores, raw cams)``; the PyTorch backend
uses CUDA when it is present. Torch is imported only when a torch backend is made.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from core.bundle import ModelCard, load_net
from core.explain import normalise_cams, to_uint8
from core.types import Inspection


class Backend(Protocol):
    device: str

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N x C x H x W float32 -> (scores [N], raw cams [N, h, w])."""
        ...


def pick_device(requested: str | None = None) -> str:
    """``cuda`` when a GPU is present (or asked for), else ``cpu``."""
    import torch

    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but no CUDA device is available")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchBackend:
    def __init__(self, bundle: Path, device: str | None = None) -> None:
        import torch

        from core.explain import score_and_cam

        net, self.card = load_net(bundle)
        self.device = pick_device(device)
        self._torch = torch
        self._module = score_and_cam(net).to(self.device).eval()

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            scores, cams = self._module(x)
            return scores.float().cpu().numpy(), cams.float().cpu().numpy()


class Inspector:
    """Scores parts with a model bundle and explains them with Grad-CAM.

    The threshold in force starts at the bundle's chosen threshold and can be changed at run time
    (thread-safe); every ``Inspection`` records the threshold it was judged at.
    """

    def __init__(self, bundle: Path, *, device: str | None = None, threshold: float | None = None) -> None:
        self.bundle_path = Path(bundle)
        self._backend = TorchBackend(self.bundle_path, device)
        self.card: ModelCard = self._backend.card
        self.preset = self.card.preset
        self._lock = threading.Lock()
        self._threshold = float(self.card.threshold if threshold is None else threshold)

    @property
    def device(self) -> str:
        return self._backend.device

    @property
    def model_hash(self) -> str:
        return self.card.weights_sha256

    @property
    def threshold(self) -> float:
        with self._lock:
            return self._threshold

    def set_threshold(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold must be within 0..1, got {value}")
        with self._lock:
            self._threshold = float(value)

    def inspect(self, image: np.ndarray) -> Inspection:
        """One uint8 grayscale image -> its Inspection."""
        return self.inspect_batch([image])[0]

    def inspect_batch(self, images: list[np.ndarray]) -> list[Inspection]:
        start = time.perf_counter()
        batch = self.preset.batch(images)
        scores, raw = self._backend.run(batch)
        heatmaps = to_uint8(normalise_cams(raw, self.preset.input_size))
        per_part_ms = (time.perf_counter() - start) * 1000.0 / max(1, len(images))
        threshold = self.threshold
        return [
            Inspection(score=float(s), threshold=threshold, heatmap=h, latency_ms=per_part_ms)
            for s, h in zip(scores, heatmaps, strict=True)
        ]
