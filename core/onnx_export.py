"""The ONNX form of a bundle: one graph that outputs the bad probability and the raw Grad-CAM.

``export_bundle`` writes ``model.onnx`` next to the bundle's weights, with a small sidecar card
``onnx.json`` recording its SHA-256, the hash of the weights it was exported from and the parity
measured against PyTorch at export time. An export whose outputs differ from PyTorch's is not
written.

Reading (``read_onnx_card``) needs neither torch nor onnx, so a line PC can run the station on
ONNX Runtime alone: torch and onnx are imported only inside the export functions.

The graph takes ``input`` (N x C x H x W float32, N dynamic, H = W = the card's input size) and
returns ``score`` [N] and ``cam`` [N, h, w] (the raw cam of the bad class before normalisation;
``core.explain.normalise_cams`` turns it into the heatmap for either backend).
"""

from __future__ import annotations

import io
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.bundle import BundleError, ModelCard, bundle_dir, read_card
from core.fileio import sha256_bytes, write_atomic

if TYPE_CHECKING:
    from torch import nn

ONNX_FILE = "model.onnx"
ONNX_CARD_FILE = "onnx.json"
INPUT_NAME = "input"
OUTPUT_NAMES = ("score", "cam")
DEFAULT_OPSET = 17
ONNX_FORMAT_VERSION = 1
# The same bound as the Grad-CAM parity tests: normalised heatmaps within 1e-3, and the score to
# float32 rounding of a differently fused graph.
HEATMAP_TOLERANCE = 1e-3
SCORE_TOLERANCE = 1e-4


class OnnxCard(BaseModel):
    """The sidecar of ``model.onnx``: what it was made from and how well it matched PyTorch."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ONNX export card")

    format_version: int = Field(ONNX_FORMAT_VERSION, description="Version of this card's schema.")
    onnx_sha256: str = Field(description="SHA-256 of model.onnx.")
    weights_sha256: str = Field(description="SHA-256 of the safetensors weights it was exported from.")
    opset: int = Field(description="ONNX opset of the graph.")
    views: int = Field(1, description="Views of each part averaged inside the graph (the model card's).")
    pooling: Literal["avg", "max"] = Field(
        "avg", description="Global pooling inside the graph (the model card's)."
    )
    input_name: str = Field(INPUT_NAME, description="Name of the N x C x H x W float32 input.")
    output_names: tuple[str, str] = Field(OUTPUT_NAMES, description="Score [N] and raw cam [N, h, w].")
    parity_max_abs_score: float = Field(description="Largest score difference to PyTorch at export.")
    parity_max_abs_heatmap: float = Field(
        description="Largest difference of the normalised heatmaps to PyTorch at export."
    )
    exported_at: str = Field(description="UTC time of the export, ISO 8601.")
    exporter: str = Field(description="The tool that wrote the graph, with its version.")


class OnnxExportError(BundleError):
    """The export failed or did not match PyTorch; nothing was written."""


def onnx_path(bundle: Path) -> Path:
    return bundle_dir(bundle) / ONNX_FILE


def has_onnx(bundle: Path) -> bool:
    folder = bundle_dir(bundle)
    return (folder / ONNX_FILE).is_file() and (folder / ONNX_CARD_FILE).is_file()


def read_onnx_card(bundle: Path) -> tuple[ModelCard, OnnxCard]:
    """Read a bundle's card and its ONNX sidecar, checking every hash; no torch needed.

    Raises:
        BundleError: see ``load_onnx``.
    """
    card, onnx_card, _ = load_onnx(bundle)
    return card, onnx_card


def load_onnx(bundle: Path) -> tuple[ModelCard, OnnxCard, bytes]:
    """The bundle's card, ONNX sidecar and the ONNX model's bytes, all hash-checked.

    The bytes returned are the ones that were hashed, so a session made from them runs exactly
    the checked model. Needs neither torch nor onnx.

    Raises:
        BundleError: No export, an unreadable sidecar, a ``model.onnx`` whose hash does not match,
            or an export made from other weights than the bundle's (stale export).
    """
    folder = bundle_dir(bundle)
    card = read_card(folder)
    model_path, sidecar = folder / ONNX_FILE, folder / ONNX_CARD_FILE
    if not model_path.is_file() or not sidecar.is_file():
        raise BundleError(
            f"{folder} has no ONNX export ({ONNX_FILE} and {ONNX_CARD_FILE}); "
            f"run `inspector export {folder} --onnx` on a machine with PyTorch"
        )
    try:
        onnx_card = OnnxCard.model_validate_json(sidecar.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BundleError(f"{sidecar}: unreadable ONNX card: {exc}") from exc
    if onnx_card.weights_sha256 != card.weights_sha256:
        raise BundleError(
            f"{model_path} was exported from other weights ({onnx_card.weights_sha256[:12]}…) than the "
            f"bundle's ({card.weights_sha256[:12]}…); export it again. Refusing to load it."
        )
    if onnx_card.views != card.views:
        raise BundleError(
            f"{model_path} averages {onnx_card.views} view(s) of each part but the model card asks for "
            f"{card.views}; export it again. Refusing to load it."
        )
    if onnx_card.pooling != card.pooling:
        raise BundleError(
            f"{model_path} pools its features by {onnx_card.pooling} but the model card asks for "
            f"{card.pooling} pooling; export it again. Refusing to load it."
        )
    data = model_path.read_bytes()
    actual = sha256_bytes(data)
    if actual != onnx_card.onnx_sha256:
        raise BundleError(
            f"{model_path}: hash {actual[:12]}… does not match its card's {onnx_card.onnx_sha256[:12]}…; "
            "the file was changed or corrupted. Refusing to load it."
        )
    return card, onnx_card, data


def export_net(
    net: nn.Module, *, input_size: int, channels: int = 1, views: int = 1, opset: int = DEFAULT_OPSET
) -> bytes:
    """Serialise the score-and-cam graph of an ``InspectionNet`` (eval mode, CPU) to ONNX bytes."""
    import torch

    from core.explain import score_and_cam

    module = score_and_cam(net, views=views).cpu().eval()
    example = torch.zeros(1, channels, input_size, input_size)
    buffer = io.BytesIO()
    batch_axis = {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of torch.export, which needs the extra
        # onnxscript package; this one exports the graph exactly (checked below) with onnx alone.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (example,),
            buffer,  # type: ignore[arg-type]  # a file object is accepted as well as a path
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: batch_axis, OUTPUT_NAMES[0]: batch_axis, OUTPUT_NAMES[1]: batch_axis},
            opset_version=opset,
            do_constant_folding=True,
        )
    return buffer.getvalue()


def parity_inputs(card: ModelCard, count: int = 4) -> np.ndarray:
    """Generated good and bad parts at the model's input, preprocessed: the export-time check."""
    from core.synth import part_image

    images = [part_image(7, i, defective=bool(i % 2), size=card.input_size)[0] for i in range(count)]
    return card.preset.batch(images)


def measure_parity(
    net: nn.Module, model: bytes | Path, batch: np.ndarray, *, views: int = 1
) -> tuple[float, float]:
    """Run PyTorch and ONNX Runtime on ``batch`` (whole and one at a time).

    Returns:
        The largest absolute differences of the scores and of the normalised heatmaps.
    """
    import torch

    from core.explain import normalise_cams, score_and_cam
    from core.inference import ort_session

    module = score_and_cam(net, views=views).cpu().eval()
    with torch.inference_mode():
        ref_score, ref_cam = (t.numpy() for t in module(torch.from_numpy(batch)))
    session = ort_session(model, device="cpu")
    score, cam = session.run(None, {INPUT_NAME: batch})
    singles = [session.run(None, {INPUT_NAME: batch[i : i + 1]}) for i in range(len(batch))]
    size = batch.shape[-1]
    ref_heat = normalise_cams(ref_cam, size)
    score_diff, heat_diff = 0.0, 0.0
    for s, c in [
        (score, cam),
        (np.concatenate([o[0] for o in singles]), np.concatenate([o[1] for o in singles])),
    ]:
        score_diff = max(score_diff, float(np.abs(s - ref_score).max()))
        heat_diff = max(heat_diff, float(np.abs(normalise_cams(c, size) - ref_heat).max()))
    return score_diff, heat_diff


def export_bundle(bundle: Path, *, opset: int = DEFAULT_OPSET) -> OnnxCard:
    """Export a bundle to ``model.onnx`` beside its weights, after checking it against PyTorch.

    Raises:
        BundleError: The bundle cannot be read.
        OnnxExportError: ONNX Runtime's outputs differ from PyTorch's beyond the tolerances;
            nothing is written.
    """
    import torch

    from core.bundle import load_net

    folder = bundle_dir(bundle)
    net, card = load_net(folder)
    data = export_net(net, input_size=card.input_size, channels=card.channels, views=card.views, opset=opset)
    score_diff, heat_diff = measure_parity(net, data, parity_inputs(card), views=card.views)
    if not (score_diff <= SCORE_TOLERANCE and heat_diff <= HEATMAP_TOLERANCE):
        raise OnnxExportError(
            f"the ONNX model does not match PyTorch (score difference {score_diff:.2e}, limit "
            f"{SCORE_TOLERANCE:.0e}; heatmap difference {heat_diff:.2e}, limit {HEATMAP_TOLERANCE:.0e}); "
            "nothing was written"
        )
    onnx_card = OnnxCard(
        format_version=ONNX_FORMAT_VERSION,
        onnx_sha256=sha256_bytes(data),
        input_name=INPUT_NAME,
        output_names=OUTPUT_NAMES,
        weights_sha256=card.weights_sha256,
        opset=opset,
        views=card.views,
        pooling=card.pooling,
        parity_max_abs_score=score_diff,
        parity_max_abs_heatmap=heat_diff,
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        exporter=f"torch {torch.__version__} (TorchScript ONNX exporter)",
    )
    # Model first, then its card: a crash in between leaves a hash mismatch, which is refused.
    write_atomic(folder / ONNX_FILE, data)
    write_atomic(
        folder / ONNX_CARD_FILE, (json.dumps(onnx_card.model_dump(mode="json"), indent=2) + "\n").encode()
    )
    return onnx_card
