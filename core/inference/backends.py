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
from typing import Any, NamedTuple, Protocol

import numpy as np

from core.common.fileio import sha256_bytes
from core.inference.onnx_bundle import OnnxCard, has_onnx, load_onnx, onnx_path, run_sha256
from core.model.bundle import BundleError, ModelCard, load_net, read_card
from core.model.device import default_threads, pick_device

BACKENDS = ("auto", "torch", "onnx")


class RawOutputs(NamedTuple):
    """What a backend gives for a batch: the classifier's and, with a second opinion, the anomaly model's."""

    scores: np.ndarray  # [N] bad probability
    cams: np.ndarray  # [N, h, w] raw Grad-CAM of the bad class
    anomaly_scores: np.ndarray | None  # [N] largest cell of the anomaly map; None without the model
    anomaly_maps: np.ndarray | None  # [N, h', w'] Mahalanobis distance of each cell


class Backend(Protocol):
    name: str  # "torch" or "onnx"
    device: str  # "cpu" or "cuda"
    card: ModelCard
    # What the log records with each decision: covers the card, the weights and (ONNX) the graph.
    model_hash: str
    graph_sha256: str | None  # SHA-256 of the ONNX graph that runs; None on torch

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N x C x H x W float32 -> (scores [N], raw cams [N, h, w])."""
        ...

    def run_all(self, batch: np.ndarray) -> RawOutputs:
        """N x C x H x W float32 -> every output, the anomaly model's included when it runs."""
        ...

    def close(self) -> None: ...


class TorchBackend:
    name = "torch"

    def __init__(
        self,
        bundle: Path,
        device: str | None = None,
        *,
        threads: int | None = None,
        second_opinion: bool = True,
    ) -> None:
        import torch

        from core.model.anomaly import load_combined
        from core.model.explain import score_and_cam  # torch: only with this backend

        net, self.card = load_net(bundle)
        self.model_hash = self.card.content_sha256
        self.graph_sha256: str | None = None
        self.device = pick_device(device)
        if threads is not None and self.device == "cpu":
            torch.set_num_threads(threads)  # process-wide: torch has no per-model setting
        self._torch = torch
        self.second_opinion = second_opinion and self.card.anomaly is not None
        module = (
            load_combined(bundle, net, self.card)
            if self.second_opinion
            else score_and_cam(net, views=self.card.views)
        )
        self._module: Any = module.to(self.device).eval()

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.run_all(batch)
        return out.scores, out.cams

    def run_all(self, batch: np.ndarray) -> RawOutputs:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            outputs = [t.float().cpu().numpy() for t in self._module(x)]
        if len(outputs) == 4:
            return RawOutputs(*outputs)
        return RawOutputs(outputs[0], outputs[1], None, None)

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


def _parsed_session(bundle: Path, data: bytes, *, device: str | None, threads: int | None) -> Any:
    """``ort_session`` on a bundle's graph bytes; bytes ONNX Runtime cannot parse are a refused bundle."""
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidGraph, InvalidProtobuf

    try:
        return ort_session(data, device=device, threads=threads)
    except (InvalidProtobuf, InvalidGraph) as exc:
        raise BundleError(
            f"{onnx_path(bundle)} is not a valid ONNX model ({exc}); export it again. Refusing to load it."
        ) from exc


def check_graph(session: Any, card: ModelCard, onnx_card: OnnxCard, bundle: Path) -> None:
    """Refuse a graph whose input or outputs are not what the card and sidecar say.

    A graph for another input size or channel count would fail on every part at run time; found
    here, it is one clear refusal at start-up instead.

    Raises:
        BundleError: naming what the graph takes or gives and what the card asks for.
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    want = [card.channels, card.input_size, card.input_size]
    got = [i.name for i in inputs], (list(inputs[0].shape[1:]) if len(inputs) == 1 else None)
    if got != ([onnx_card.input_name], want):
        raise BundleError(
            f"{onnx_path(bundle)} takes input {got[0]} of shape N x {got[1]}, but the card asks for "
            f"{onnx_card.input_name!r} of N x {want}; export it again. Refusing to load it."
        )
    names = tuple(o.name for o in outputs)
    if names != tuple(onnx_card.output_names):
        raise BundleError(
            f"{onnx_path(bundle)} gives outputs {names}, not {tuple(onnx_card.output_names)}; "
            "export it again. Refusing to load it."
        )


class OnnxBackend:
    name = "onnx"

    def __init__(self, bundle: Path, device: str | None = None, *, threads: int | None = None) -> None:
        # The session is made from the very bytes that were hash-checked.
        self.card, self.onnx_card, data = load_onnx(bundle)
        # The graph's own bytes, measured: the sidecar's claim could have been rewritten with it.
        graph = sha256_bytes(data)
        self.graph_sha256: str | None = graph
        self.model_hash = run_sha256(self.card, graph)
        self._session: Any = _parsed_session(bundle, data, device=device, threads=threads)
        self.device = "cuda" if self._session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self._input = self.onnx_card.input_name
        check_graph(self._session, self.card, self.onnx_card, bundle)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.run_all(batch)
        return out.scores, out.cams

    def run_all(self, batch: np.ndarray) -> RawOutputs:
        # The anomaly outputs are part of the one graph (exported with the card's anomaly model).
        outputs = [
            np.asarray(o, np.float32)
            for o in self._session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})
        ]
        if len(outputs) == 4:
            return RawOutputs(*outputs)
        return RawOutputs(outputs[0], outputs[1], None, None)

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
    bundle: Path,
    backend: str = "auto",
    device: str | None = None,
    *,
    threads: int | None = None,
    second_opinion: bool = True,
) -> TorchBackend | OnnxBackend:
    """The backend for a bundle; ``second_opinion=False`` leaves its anomaly model out (torch only:
    an exported graph has it built in, so such a bundle then runs on torch)."""
    device = None if device == "auto" else device
    chosen = resolve_backend(bundle, backend, device)
    leave_out = not second_opinion and read_card(bundle).anomaly is not None
    if chosen == "onnx" and not leave_out:
        return OnnxBackend(bundle, device, threads=threads)
    if chosen == "onnx" and backend == "onnx":
        raise ValueError("the ONNX graph holds the anomaly model: run it without the second opinion on torch")
    return TorchBackend(bundle, device, threads=threads, second_opinion=second_opinion)
