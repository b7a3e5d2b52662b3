"""The ONNX form of a bundle: one graph that outputs the bad probability and the raw Grad-CAM.

``export_bundle`` writes ``model.onnx`` next to the bundle's weights, with a small sidecar card
``onnx.json`` recording its SHA-256, the hashes of the weights and of the model card it was
exported from (so a card edited afterwards is refused on the ONNX path: "export it again") and
the parity measured against PyTorch at export time. An export whose outputs differ from PyTorch's is not
written.

Reading (``read_onnx_card``) needs neither torch nor onnx, so a line PC can run the station on
ONNX Runtime alone: torch and onnx are imported only inside the export functions.

The graph takes ``input`` (N x C x H x W float32, N dynamic, H = W = the card's input size) and
returns ``score`` [N] and ``cam`` [N, h, w] (the raw cam of the bad class before normalisation;
``core.model.explain.normalise_cams`` turns it into the heatmap for either backend).
"""

from __future__ import annotations

import io
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.common.fileio import sha256_bytes, write_atomic
from core.model.bundle import BundleError, ModelCard, bundle_dir

if TYPE_CHECKING:
    from torch import nn

from core.inference.onnx_bundle import (
    ANOMALY_OUTPUT_NAMES,
    DEFAULT_OPSET,
    INPUT_NAME,
    ONNX_CARD_FILE,
    ONNX_FILE,
    ONNX_FORMAT_VERSION,
    OUTPUT_NAMES,
    OnnxCard,
)

# The same bound as the Grad-CAM parity tests: normalised heatmaps within 1e-3, and the score to
# float32 rounding of a differently fused graph.
HEATMAP_TOLERANCE = 1e-3
SCORE_TOLERANCE = 1e-4
# Anomaly scores and maps are distances of no fixed scale: compared relative to their largest value.
ANOMALY_TOLERANCE = 1e-3


class OnnxExportError(BundleError):
    """The export failed or did not match PyTorch; nothing was written."""


def export_net(
    net: nn.Module, *, input_size: int, channels: int = 1, views: int = 1, opset: int = DEFAULT_OPSET
) -> bytes:
    """Serialise the score-and-cam graph of an ``InspectionNet`` (eval mode, CPU) to ONNX bytes."""
    from core.model.explain import score_and_cam

    module = score_and_cam(net, views=views)
    return export_module(module, input_size=input_size, channels=channels, names=OUTPUT_NAMES, opset=opset)


def export_module(
    module: nn.Module, *, input_size: int, channels: int, names: tuple[str, ...], opset: int = DEFAULT_OPSET
) -> bytes:
    """Serialise a module ``x -> outputs named names`` (score and cam, and the anomaly model's) to ONNX."""
    import torch

    module = module.cpu().eval()
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
            output_names=list(names),
            dynamic_axes={INPUT_NAME: batch_axis, **{name: batch_axis for name in names}},
            opset_version=opset,
            do_constant_folding=True,
        )
    return buffer.getvalue()


def parity_inputs(card: ModelCard, count: int = 4) -> np.ndarray:
    """Plain generated pictures at the model's input, preprocessed: the export-time check.

    A bright disc on a dark, noisy ground, with dark pits on every other one, so that the
    scores and heatmaps compared span more than one flat picture. Seeded: every export checks
    the same pictures.
    """
    rng = np.random.default_rng(7)
    size = card.input_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = []
    for i in range(count):
        cx, cy = size * (0.45 + 0.1 * rng.random(2))
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= (0.35 * size) ** 2
        img = np.where(disc, 170.0, 40.0) + rng.normal(0.0, 12.0, (size, size))
        if i % 2:
            for _ in range(3):
                px, py = cx + rng.uniform(-0.2, 0.2) * size, cy + rng.uniform(-0.2, 0.2) * size
                img[(xx - px) ** 2 + (yy - py) ** 2 <= (0.03 * size) ** 2] = 25.0
        images.append(np.clip(img, 0, 255).astype(np.uint8))
    return card.preset.batch(images)


def measure_parity(
    net: nn.Module, model: bytes | Path, batch: np.ndarray, *, views: int = 1
) -> tuple[float, float]:
    """Run PyTorch and ONNX Runtime on ``batch`` (whole and one at a time).

    Returns:
        The largest absolute differences of the scores and of the normalised heatmaps.
    """
    import torch

    from core.inference.backends import ort_session
    from core.model.explain import normalise_cams, score_and_cam

    module = score_and_cam(net, views=views).cpu().eval()
    with torch.inference_mode():
        ref_score, ref_cam = (t.numpy() for t in module(torch.from_numpy(batch)))
    session = ort_session(model, device="cpu")
    score, cam = session.run(None, {INPUT_NAME: batch})[:2]  # the anomaly outputs, if any, follow
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


def measure_anomaly_parity(module: nn.Module, model: bytes, batch: np.ndarray) -> float:
    """The largest difference of the anomaly scores and maps between PyTorch and ONNX Runtime,
    relative to the largest PyTorch value (distances have no fixed scale)."""
    import torch

    from core.inference.backends import ort_session

    with torch.inference_mode():
        ref = [t.numpy() for t in module.cpu().eval()(torch.from_numpy(batch))]
    got = ort_session(model, device="cpu").run(None, {INPUT_NAME: batch})
    worst = 0.0
    for index in (2, 3):  # anomaly score, anomaly map
        scale = max(float(np.abs(ref[index]).max()), 1e-12)
        worst = max(worst, float(np.abs(got[index] - ref[index]).max()) / scale)
    return worst


def export_bundle(bundle: Path, *, opset: int = DEFAULT_OPSET) -> OnnxCard:
    """Export a bundle to ``model.onnx`` beside its weights, after checking it against PyTorch.

    Raises:
        BundleError: The bundle cannot be read.
        OnnxExportError: ONNX Runtime's outputs differ from PyTorch's beyond the tolerances;
            nothing is written.
    """
    import torch

    from core.model.bundle import load_net

    folder = bundle_dir(bundle)
    net, card = load_net(folder)
    names: tuple[str, ...] = OUTPUT_NAMES
    anomaly_diff: float | None = None
    if card.anomaly is None:
        data = export_net(
            net, input_size=card.input_size, channels=card.channels, views=card.views, opset=opset
        )
    else:
        from core.model.anomaly import load_combined

        names = ANOMALY_OUTPUT_NAMES
        combined = load_combined(folder, net, card)
        data = export_module(
            combined, input_size=card.input_size, channels=card.channels, names=names, opset=opset
        )
        anomaly_diff = measure_anomaly_parity(combined, data, parity_inputs(card))
    score_diff, heat_diff = measure_parity(net, data, parity_inputs(card), views=card.views)
    if not (score_diff <= SCORE_TOLERANCE and heat_diff <= HEATMAP_TOLERANCE):
        raise OnnxExportError(
            f"the ONNX model does not match PyTorch (score difference {score_diff:.2e}, limit "
            f"{SCORE_TOLERANCE:.0e}; heatmap difference {heat_diff:.2e}, limit {HEATMAP_TOLERANCE:.0e}); "
            "nothing was written"
        )
    if anomaly_diff is not None and not anomaly_diff <= ANOMALY_TOLERANCE:
        raise OnnxExportError(
            f"the ONNX anomaly outputs do not match PyTorch (relative difference {anomaly_diff:.2e}, limit "
            f"{ANOMALY_TOLERANCE:.0e}); nothing was written"
        )
    onnx_card = OnnxCard(
        format_version=ONNX_FORMAT_VERSION,
        onnx_sha256=sha256_bytes(data),
        input_name=INPUT_NAME,
        output_names=names,
        parity_max_rel_anomaly=anomaly_diff,
        weights_sha256=card.weights_sha256,
        card_sha256=card.content_sha256,
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
