"""A bundle's ONNX export on disk: the sidecar card and the hash-checked graph bytes.

Needs neither torch nor onnx, so a line PC can run the station on ONNX Runtime alone. Writing the
export is ``core.inference.export``; running it is ``core.inference.backends.OnnxBackend``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.common.fileio import sha256_bytes
from core.model.bundle import BundleError, ModelCard, bundle_dir, read_card

ONNX_FILE = "model.onnx"
ONNX_CARD_FILE = "onnx.json"
INPUT_NAME = "input"
OUTPUT_NAMES = ("score", "cam")
DEFAULT_OPSET = 17
ONNX_FORMAT_VERSION = 1


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
