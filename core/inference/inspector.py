"""The Inspector: bad probability, verdict and Grad-CAM heatmap for every part, in one pass.

With a bundle that holds a good-only anomaly model (``core.model.anomaly``) the same pass also
gives the anomaly score and its map; the verdict is bad when either opinion passes its threshold.

It runs one of the backends of ``core.inference.backends`` (torch or ONNX Runtime). Both produce the raw cam of the bad class; ``normalise_cams`` and ``to_uint8`` (numpy, OpenCV)
turn it into the 8-bit heatmap the same way for either. Torch and ONNX Runtime are imported only
when a backend of theirs is made.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from core.common.types import Inspection
from core.inference.backends import Backend, make_backend
from core.model.anomaly import anomaly_heatmap
from core.model.bundle import ModelCard
from core.model.explain import normalise_cams, to_uint8


class Inspector:
    """Scores parts with a model bundle and explains them with Grad-CAM, in one pass.

    The threshold in force starts at the bundle's chosen threshold and can be changed at run time
    (thread-safe); every ``Inspection`` records the threshold it was judged at.

    Args:
        bundle: The model bundle folder.
        backend: ``torch``, ``onnx`` or ``auto`` (see ``resolve_backend``).
        device: ``cpu``, ``cuda`` or None/``auto`` for a GPU when one is present.
        threshold: The threshold in force; default the bundle's.
        threads: CPU threads for inference; default one per core.
        second_opinion: Run the bundle's good-only anomaly model (when it has one) beside the
            classifier, in the same pass: a part is bad when either passes its threshold. False
            leaves it out (the classifier alone, e.g. to measure what it costs).
    """

    def __init__(
        self,
        bundle: Path,
        *,
        backend: str = "auto",
        device: str | None = None,
        threshold: float | None = None,
        threads: int | None = None,
        second_opinion: bool = True,
    ) -> None:
        self.bundle_path = Path(bundle)
        self._backend: Backend = make_backend(
            self.bundle_path, backend, device, threads=threads, second_opinion=second_opinion
        )
        self.card: ModelCard = self._backend.card
        anomaly = self.card.anomaly if second_opinion else None
        # The anomaly threshold is the card's: it was chosen for a false-reject budget on validation.
        self.anomaly_threshold: float | None = anomaly.threshold if anomaly is not None else None
        self.preset = self.card.preset
        self._lock = threading.Lock()
        self._threshold = float(self.card.threshold if threshold is None else threshold)
        if not 0.0 <= self._threshold <= 1.0:
            raise ValueError(f"threshold must be within 0..1, got {self._threshold}")

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def device(self) -> str:
        return self._backend.device

    @property
    def model_hash(self) -> str:
        """The hash the log records with each decision: it covers what runs, not just the weights.

        With the torch backend, ``ModelCard.content_sha256`` (the card, which holds the weights'
        hash); with ONNX Runtime, ``run_sha256`` over that and the graph's bytes. An edited card or
        a swapped graph therefore runs, if at all, under another hash. A run-time threshold is not
        part of it: each decision records its own threshold.
        """
        return self._backend.model_hash

    @property
    def model_metadata(self) -> dict[str, Any]:
        """What ``model_hash`` stands for, to keep with it in the log: the card as JSON, plus the
        graph's ``onnx_sha256`` on ONNX Runtime (``onnx_bundle.model_hash_of`` recomputes the hash)."""
        metadata: dict[str, Any] = self.card.model_dump(mode="json")
        if self._backend.graph_sha256 is not None:
            metadata["onnx_sha256"] = self._backend.graph_sha256
        return metadata

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
        """uint8 grayscale images of any size -> one Inspection each, in order."""
        start = time.perf_counter()
        return self.inspect_preprocessed(self.preset.batch(images), started=start)

    def inspect_preprocessed(self, batch: np.ndarray, *, started: float | None = None) -> list[Inspection]:
        """An N x C x H x W batch already made by ``self.preset`` -> one Inspection per image.

        Args:
            batch: float32 input of the model.
            started: ``time.perf_counter()`` when the work on these parts began, for the latency
                recorded with each inspection; default now.
        """
        start = time.perf_counter() if started is None else started
        out = self._backend.run_all(batch)
        size = self.preset.input_size
        heatmaps = to_uint8(normalise_cams(out.cams, size))
        anomaly_threshold = self.anomaly_threshold
        anomaly_scores: list[float | None] = [None] * len(heatmaps)
        anomaly_maps: list[np.ndarray | None] = [None] * len(heatmaps)
        if anomaly_threshold is not None and out.anomaly_scores is not None and out.anomaly_maps is not None:
            anomaly_scores = [float(a) for a in out.anomaly_scores]
            anomaly_maps = list(anomaly_heatmap(out.anomaly_maps, anomaly_threshold, size))
        per_part_ms = (time.perf_counter() - start) * 1000.0 / max(1, len(batch))
        threshold = self.threshold
        return [
            Inspection(
                score=float(s),
                threshold=threshold,
                heatmap=h,
                latency_ms=per_part_ms,
                anomaly_score=a,
                anomaly_threshold=anomaly_threshold if a is not None else None,
                anomaly_heatmap=m,
            )  # fmt: skip
            for s, h, a, m in zip(out.scores, heatmaps, anomaly_scores, anomaly_maps, strict=True)
        ]

    def close(self) -> None:
        """Release the model and its session; the inspector cannot be used afterwards."""
        self._backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
