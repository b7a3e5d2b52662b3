"""The Inspector: bad probability, verdict and Grad-CAM heatmap for every part, in one pass.

Backends share one small interface, ``run(batch) -> (scores, raw cams)``:

- ``torch``: the bundle's network wrapped in ``core.explain.ScoreAndCam``, on CUDA when a GPU is
  present, else on the CPU.
- ``onnx``: the bundle's exported ``model.onnx`` (see ``core.onnx_export``) on ONNX Runtime, with
  the CUDA provider when it is installed and a GPU is present. It never imports torch, so a line PC
  can run the station with ONNX Runtime alone.

Both produce the raw cam of the bad class; ``normalise_cams`` and ``to_uint8`` (numpy, OpenCV)
turn it into the 8-bit heatmap the same way for either. Torch and ONNX Runtime are imported only
when a backend of theirs is made.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import numpy as np

from core.bundle import ModelCard, load_net
from core.explain import normalise_cams, to_uint8
from core.types import Inspection

BACKENDS = ("auto", "torch", "onnx")


class Backend(Protocol):
    name: str  # "torch" or "onnx"
    device: str  # "cpu" or "cuda"

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N x C x H x W float32 -> (scores [N], raw cams [N, h, w])."""
        ...

    def close(self) -> None: ...


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pick_device(requested: str | None = None) -> str:
    """``cuda`` when a GPU is present (or asked for), else ``cpu``."""
    import torch

    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but no CUDA device is available")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchBackend:
    name = "torch"

    def __init__(self, bundle: Path, device: str | None = None, *, threads: int | None = None) -> None:
        import torch

        from core.explain import score_and_cam

        net, self.card = load_net(bundle)
        self.device = pick_device(device)
        if threads is not None and self.device == "cpu":
            torch.set_num_threads(threads)  # process-wide: torch has no per-model setting
        self._torch = torch
        self._module: Any = score_and_cam(net, views=self.card.views).to(self.device).eval()

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            scores, cams = self._module(x)
            return scores.float().cpu().numpy(), cams.float().cpu().numpy()

    def close(self) -> None:
        self._module = None


def ort_providers(device: str | None) -> list[str]:
    """ONNX Runtime providers for a device request; CUDA when asked for or when present."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    cuda = "CUDAExecutionProvider" in available
    if device and device.startswith("cuda"):
        if not cuda:
            raise RuntimeError(
                "CUDA was requested but ONNX Runtime has no CUDA provider (install onnxruntime-gpu)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device in (None, "auto") and cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def ort_session(model: bytes | Path, *, device: str | None = None, threads: int | None = None) -> Any:
    """An ONNX Runtime session with all graph optimisations and one intra-op thread per core."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=ort_providers(device))


class OnnxBackend:
    name = "onnx"

    def __init__(self, bundle: Path, device: str | None = None, *, threads: int | None = None) -> None:
        from core.onnx_export import load_onnx

        # The session is made from the very bytes that were hash-checked.
        self.card, self.onnx_card, data = load_onnx(bundle)
        self._session: Any = ort_session(data, device=device, threads=threads)
        self.device = "cuda" if self._session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self._input = self.onnx_card.input_name

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, cams = self._session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})
        return np.asarray(scores, np.float32), np.asarray(cams, np.float32)

    def close(self) -> None:
        self._session = None


def _torch_cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_backend(bundle: Path, backend: str = "auto", device: str | None = None) -> str:
    """Which backend ``auto`` means for this bundle on this machine.

    ONNX Runtime when the bundle has an export and onnxruntime is installed (it is the faster one
    on a CPU), except that a GPU reachable only through torch goes to torch; torch otherwise.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    from core.onnx_export import has_onnx

    have_torch = importlib.util.find_spec("torch") is not None
    have_ort = importlib.util.find_spec("onnxruntime") is not None and has_onnx(bundle)
    if not have_ort:
        if not have_torch:
            raise RuntimeError(
                f"{bundle}: neither PyTorch nor an ONNX export with onnxruntime is available to run it"
            )
        return "torch"
    if device == "cpu" or not have_torch:
        return "onnx"
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return "onnx"
    return "torch" if _torch_cuda_available() else "onnx"


def make_backend(
    bundle: Path, backend: str = "auto", device: str | None = None, *, threads: int | None = None
) -> TorchBackend | OnnxBackend:
    device = None if device == "auto" else device
    chosen = resolve_backend(bundle, backend, device)
    if chosen == "onnx":
        return OnnxBackend(bundle, device, threads=threads)
    return TorchBackend(bundle, device, threads=threads)


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
    """

    def __init__(
        self,
        bundle: Path,
        *,
        backend: str = "auto",
        device: str | None = None,
        threshold: float | None = None,
        threads: int | None = None,
    ) -> None:
        self.bundle_path = Path(bundle)
        self._backend: TorchBackend | OnnxBackend = make_backend(
            self.bundle_path, backend, device, threads=threads
        )
        self.card: ModelCard = self._backend.card
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
        scores, raw = self._backend.run(batch)
        heatmaps = to_uint8(normalise_cams(raw, self.preset.input_size))
        per_part_ms = (time.perf_counter() - start) * 1000.0 / max(1, len(batch))
        threshold = self.threshold
        return [
            Inspection(score=float(s), threshold=threshold, heatmap=h, latency_ms=per_part_ms)
            for s, h in zip(scores, heatmaps, strict=True)
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
