"""The two ways to run a bundle, behind one small interface: ``run(batch) -> (scores, raw cams)``.

- ``torch``: the bundle's network wrapped in ``core.model.explain.ScoreAndCam``, on CUDA when a GPU
  is present, else on the CPU.
- ``onnx``: the bundle's exported ``model.onnx`` on ONNX Runtime, with the CUDA provider when it is
  installed and a GPU is present. It never imports torch.

Torch and ONNX Runtime are imported only when a backend of theirs is made.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.inference.onnx_bundle import has_onnx, load_onnx
from core.model.bundle import load_net
from core.model.device import default_threads, pick_device

BACKENDS = ("auto", "torch", "onnx")


class Backend(Protocol):
    name: str  # "torch" or "onnx"
    device: str  # "cpu" or "cuda"

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N x C x H x W float32 -> (scores [N], raw cams [N, h, w])."""
        ...

    def close(self) -> None: ...


class TorchBackend:
    name = "torch"

    def __init__(self, bundle: Path, device: str | None = None, *, threads: int | None = None) -> None:
        import torch

        from core.model.explain import score_and_cam  # torch: only with this backend

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
