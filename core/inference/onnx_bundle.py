"""A bundle's ONNX export on disk: the sidecar card and the hash-checked graph bytes.

Needs neither torch nor onnx, so a line PC can run the station on ONNX Runtime alone. Writing the
export is ``core.inference.export``; running it is ``core.inference.backends.OnnxBackend``.

What is checked before a graph runs, each mismatch refused with a ``BundleError``:

- the bundle itself (``core.model.bundle.read_card``: the card validated, the weights' format
  and hash);
- the sidecar's claims against the card: the weights it was exported from, the views and the
  pooling baked into the graph, and (exports from format 2 on) the card hash it was exported
  from, so a card edited after the export ("export it again") is refused here too;
- the graph's bytes against the sidecar's SHA-256, and (in the backend, once ONNX Runtime has
  parsed them) the graph's input and outputs against the card's input size and channels.

The sidecar is not itself trusted: whoever can swap ``model.onnx`` can rewrite ``onnx.json`` to
match. So the hash recorded with each decision on this path (``run_sha256``) covers the graph
that actually runs as well as the card (``ModelCard.content_sha256``, which covers the weights):
a swapped graph runs, if at all, under a model hash of its own, never under the bundle's.

Exports written before the card hash was recorded (format 1, no ``card_sha256``) still load: every
other check holds for them, and an edited card still changes the recorded hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.common.fileio import sha256_bytes
from core.model.bundle import CARD_FILE, BundleError, ModelCard, bundle_dir, card_sha256, read_card

ONNX_FILE = "model.onnx"
ONNX_CARD_FILE = "onnx.json"
INPUT_NAME = "input"
OUTPUT_NAMES = ("score", "cam")
ANOMALY_OUTPUT_NAMES = ("score", "cam", "anomaly_score", "anomaly_map")  # one graph, both opinions
DEFAULT_OPSET = 17
ONNX_FORMAT_VERSION = 2  # 2: the sidecar records the card hash it was exported from
# Tagged like the card hash, so a run hash never equals a card or file hash.
RUN_HASH_TAG = b"inspector onnx run v1\n"


class OnnxCard(BaseModel):
    """The sidecar of ``model.onnx``: what it was made from and how well it matched PyTorch."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ONNX export card")

    format_version: int = Field(
        ONNX_FORMAT_VERSION, ge=1, le=ONNX_FORMAT_VERSION, description="Version of this card's schema."
    )
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of model.onnx.")
    weights_sha256: str = Field(description="SHA-256 of the safetensors weights it was exported from.")
    card_sha256: str | None = Field(
        None,
        description="Model hash (ModelCard.content_sha256) of the card it was exported from; "
        "None in exports of format 1.",
    )
    opset: int = Field(description="ONNX opset of the graph.")
    views: int = Field(1, description="Views of each part averaged inside the graph (the model card's).")
    pooling: Literal["avg", "max"] = Field(
        "avg", description="Global pooling inside the graph (the model card's)."
    )
    input_name: str = Field(INPUT_NAME, description="Name of the N x C x H x W float32 input.")
    output_names: tuple[str, ...] = Field(
        OUTPUT_NAMES,
        min_length=2,
        max_length=4,
        description="Score [N] and raw cam [N, h, w]; with the card's anomaly model also "
        "anomaly_score [N] and anomaly_map [N, h', w'] (ANOMALY_OUTPUT_NAMES).",
    )
    parity_max_abs_score: float = Field(description="Largest score difference to PyTorch at export.")
    parity_max_abs_heatmap: float = Field(
        description="Largest difference of the normalised heatmaps to PyTorch at export."
    )
    parity_max_rel_anomaly: float | None = Field(
        None,
        description="Largest difference of the anomaly scores and maps to PyTorch at export, relative to "
        "the largest value; None without an anomaly model.",
    )
    exported_at: str = Field(description="UTC time of the export, ISO 8601.")
    exporter: str = Field(description="The tool that wrote the graph, with its version.")


def run_sha256(card: ModelCard, onnx_sha256: str) -> str:
    """The model hash of a bundle run through its ONNX graph: the card's hash and the graph's.

    Args:
        card: The bundle's checked card.
        onnx_sha256: SHA-256 of the graph bytes that run (measured, not the sidecar's claim).
    """
    return _run_sha256(card.content_sha256, onnx_sha256)


def _run_sha256(card_hash: str, onnx_sha256: str) -> str:
    return sha256_bytes(RUN_HASH_TAG + f"{card_hash}\n{onnx_sha256}".encode("ascii"))


def model_hash_of(metadata: dict[str, Any]) -> str:
    """Recompute a model hash from what the log keeps with it (``Inspector.model_metadata``).

    An auditor's check that the recorded hash stands for the recorded card (and graph): the card
    as JSON, plus ``onnx_sha256`` when it ran on ONNX Runtime.
    """
    card = {k: v for k, v in metadata.items() if k != "onnx_sha256"}
    content = card_sha256(card)
    graph = metadata.get("onnx_sha256")
    return content if graph is None else _run_sha256(content, str(graph))


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
            or an export made from other weights or another card than the bundle's (stale export).
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
    if onnx_card.format_version >= 2 and onnx_card.card_sha256 is None:
        raise BundleError(f"{sidecar}: unreadable ONNX card: card_sha256 is missing; export it again")
    # After views and pooling, whose own messages say more than "another card".
    if onnx_card.card_sha256 is not None and onnx_card.card_sha256 != card.content_sha256:
        raise BundleError(
            f"{model_path} was exported from another model card ({onnx_card.card_sha256[:12]}…) than "
            f"{folder / CARD_FILE} ({card.content_sha256[:12]}…): the card was edited after the export; "
            "export it again. Refusing to load it."
        )
    wanted = ANOMALY_OUTPUT_NAMES if card.anomaly is not None else OUTPUT_NAMES
    if tuple(onnx_card.output_names) != wanted:
        raise BundleError(
            f"{model_path} gives {tuple(onnx_card.output_names)} but the model card asks for {wanted}; "
            "export it again. Refusing to load it."
        )
    data = model_path.read_bytes()
    actual = sha256_bytes(data)
    if actual != onnx_card.onnx_sha256:
        raise BundleError(
            f"{model_path}: hash {actual[:12]}… does not match its card's {onnx_card.onnx_sha256[:12]}…; "
            "the file was changed or corrupted. Refusing to load it."
        )
    return card, onnx_card, data
