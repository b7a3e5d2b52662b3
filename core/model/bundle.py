"""The model bundle: weights in safetensors plus a JSON card, loaded without executing code.

A bundle is a folder holding ``model.safetensors`` and ``model.json`` (and, with the good-only
second opinion, ``anomaly.safetensors``, hashed on the card like the weights: ``core.model.anomaly``). The card records the
architecture, the preprocessing preset, the class names, the chosen threshold, the hash of the
training data and of the weights, and the metrics.

What is checked at load (``read_card``), so that a bundle either runs as its card says or is
refused with a ``BundleError`` that names the problem:

- The card is validated field by field: an input size, normalisation, architecture, number of
  views or channels outside what the code can run is refused here, naming the field and the
  allowed range, instead of crashing every prediction later (a station would then mark every
  part "inspection failed").
- The weights file must be a safetensors file (its header is checked before anything reads it:
  a pickle renamed to ``model.safetensors`` is refused, never unpickled) and its SHA-256 must be
  the one on the card.

The model hash (``ModelCard.content_sha256``) is what the visual log records with every
decision. It covers the whole card (which holds the weights' SHA-256, so it covers the weights
too), not the weights alone: an edited ``threshold``, ``pooling`` or ``normalisation`` changes
the decisions, so it must change the recorded hash. It is a SHA-256 over the card's canonical
JSON (keys sorted, defaults filled in, no whitespace) minus the fields that do not change what the
model does (``VOLATILE_FIELDS``: when and by which version the card was written).

The hash is computed at load, never stored, on purpose:

- Bundles written before it existed load unchanged, and get the same hash as a fresh save of the
  same card would.
- A stored hash could simply be rewritten along with the edit. A computed one cannot be forged:
  an edited card is a different model in the log (the card itself is kept with the model's hash
  by the station), which is what makes the edit visible: the decisions made after it name
  another model, and an auditor can recompute the hash from the registered card
  (``core.inference.onnx_bundle.model_hash_of``).

A threshold chosen at run time (``--threshold``, the GUI) is not a card edit: it leaves the model
hash alone and is recorded with each decision and as an audited threshold change. The ONNX
export (``core.inference.onnx_bundle``) records the card hash it was exported from and the graph
that runs is part of its own run hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core import __version__
from core.common.fileio import sha256_bytes, sha256_file, write_atomic
from core.imaging.preprocess import Preset
from core.model.anomaly_card import ANOMALY_FILE, TENSOR_NAMES, AnomalyCard
from core.model.architectures import ARCHITECTURES

if TYPE_CHECKING:
    from torch import nn

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
FORMAT_VERSION = 1
# Card fields that say when and by what the card was written, not what the model does: they are
# left out of the model hash, so the same model saved again is the same model in the log.
VOLATILE_FIELDS = frozenset({"created_at", "software_version"})
# A tag hashed before the card, so a model hash can never equal a plain file hash by construction.
CARD_HASH_TAG = b"inspector model card v1\n"
# Input sides the code runs: below 16 px the deeper nets pool nothing; above 4096 px one part's
# input alone is 64 MiB (and 60000 px would be 14 GB), far past any camera on a line.
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 4096
# A safetensors file starts with an 8-byte little-endian header length and a JSON header; real
# headers are a few kilobytes (safetensors itself refuses above 100 MB).
_MAX_HEADER_BYTES = 100_000_000


class BundleError(RuntimeError):
    """A model bundle that cannot be used; the message says why and what to do."""


class ModelCard(BaseModel):
    """Everything needed to rebuild and trust a trained model; validated so that it can run."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Model card", allow_inf_nan=False)

    format_version: int = Field(
        FORMAT_VERSION, ge=1, le=FORMAT_VERSION, description="Version of this card's schema."
    )
    name: str = Field(description="Human name of the model, shown to operators.")
    architecture: str = Field(description="One of core.model.architectures.ARCHITECTURES.")
    input_size: int = Field(ge=MIN_INPUT_SIZE, le=MAX_INPUT_SIZE, description="Square input side in pixels.")
    channels: Literal[1, 3] = Field(1, description="1 for grayscale, 3 for RGB.")
    mean: float = Field(0.5, ge=0.0, le=1.0, description="Normalisation mean on the 0..1 scale.")
    std: float = Field(
        0.25, ge=1e-3, le=1.0, description="Normalisation standard deviation on the 0..1 scale."
    )
    normalisation: Literal["fixed", "per_image"] = Field(
        "fixed",
        description="'fixed': (x - mean) / std for every image; 'per_image': each image to mean 0, std 1.",
    )
    class_names: tuple[str, str] = Field(("good", "bad"), description="Index 0 good, index 1 bad.")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Bad-probability threshold chosen at training.")
    pooling: Literal["avg", "max"] = Field(
        "avg",
        description="Global pooling of the last feature map: 'avg' (mean) or 'max' (its strongest cell).",
    )
    views: Literal[1, 4, 8] = Field(
        1, description="Views of each part averaged: 1, 4 (flips) or 8 (flips of it and its transpose)."
    )
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the safetensors file.")
    anomaly: AnomalyCard | None = Field(
        None,
        description="The good-only second opinion (core.model.anomaly), its tensors in anomaly.safetensors; "
        "None: the classifier alone.",
    )
    training_data_hash: str | None = Field(
        None, description="Hash of the sorted content hashes of the training images."
    )
    # Metrics may hold NaN (an AUC with one class in validation): they are figures, not settings.
    metrics: dict[str, Any] = Field(default_factory=dict, description="Validation figures at training time.")
    created_at: str = Field(description="UTC time the bundle was written, ISO 8601.")
    software_version: str = Field(__version__, description="inspector version that wrote the bundle.")

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {value!r}; allowed: {', '.join(ARCHITECTURES)}")
        return value

    @property
    def preset(self) -> Preset:
        return Preset(input_size=self.input_size, channels=self.channels, mean=self.mean, std=self.std,
                      normalisation=self.normalisation)  # fmt: skip

    @property
    def short_hash(self) -> str:
        """The first 12 hex digits of the weights' SHA-256 (not the model hash)."""
        return self.weights_sha256[:12]

    @property
    def content_sha256(self) -> str:
        """The model hash: SHA-256 over the canonical card (weights hash included), see the module."""
        return card_sha256(self.model_dump(mode="json"))


def card_sha256(card: dict[str, Any]) -> str:
    """The model hash of a card given as its JSON document (e.g. as the log keeps it).

    Args:
        card: ``ModelCard.model_dump(mode="json")``, defaults filled in.
    """
    kept = {k: v for k, v in card.items() if k not in VOLATILE_FIELDS}
    if kept.get("anomaly") is None:
        # Cards without a second opinion keep the hash they had before the field existed.
        kept.pop("anomaly", None)
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(CARD_HASH_TAG + canonical.encode("ascii")).hexdigest()


def _describe(exc: ValidationError) -> str:
    """Each problem as ``field = value: what is allowed``, on one line."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "card"
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        parts.append(f"{field}{shown}: {error['msg']}")
    return "; ".join(parts)


def check_safetensors(path: Path, data: bytes | None = None) -> None:
    """Refuse a weights file whose header is not a safetensors header, before anything parses it.

    Args:
        path: The weights file (read from disk unless ``data`` is given; named in the message).
        data: The file's bytes, when they are already in memory.

    Raises:
        BundleError: The file is too short, its header length runs past the file, or the header
            is not a JSON object (a pickle, a zip, anything renamed).
    """
    with io.BytesIO(data) if data is not None else open(path, "rb") as fh:
        size = fh.seek(0, io.SEEK_END)
        fh.seek(0)
        head = fh.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        ok = 2 <= length <= min(size - 8, _MAX_HEADER_BYTES)
        header = fh.read(length) if ok else b""
    if ok:
        try:
            ok = isinstance(json.loads(header.decode("utf-8")), dict)
        except ValueError:
            ok = False
    if not ok:
        raise BundleError(
            f"{path}: not a safetensors file; refusing to load it (model files are never unpickled)"
        )


def bundle_dir(path: Path) -> Path:
    """Accept the bundle folder or either of its files."""
    path = Path(path)
    return path.parent if path.name in (WEIGHTS_FILE, CARD_FILE) else path


def read_card(path: Path) -> ModelCard:
    """Read and check a bundle's card and its weights file (format and hash); nothing is executed.

    Raises:
        BundleError: A missing file, a card outside what the code can run (the message names the
            field and the allowed range), weights that are not safetensors, or weights whose hash
            is not the card's.
    """
    folder = bundle_dir(path)
    card_path, weights_path = folder / CARD_FILE, folder / WEIGHTS_FILE
    if not card_path.is_file() or not weights_path.is_file():
        raise BundleError(f"{folder} is not a model bundle: it needs {CARD_FILE} and {WEIGHTS_FILE}")
    try:
        card = ModelCard.model_validate_json(card_path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise BundleError(f"{card_path}: unreadable model card: {_describe(exc)}") from exc
    except ValueError as exc:  # not UTF-8 text
        raise BundleError(f"{card_path}: unreadable model card: {exc}") from exc
    # The format first: a pickle under the weights' name is named for what it is, whatever its hash.
    check_safetensors(weights_path)
    actual = sha256_file(weights_path)
    if actual != card.weights_sha256:
        raise BundleError(
            f"{weights_path}: weights hash {actual[:12]}… does not match the card's "
            f"{card.weights_sha256[:12]}…; the file was changed or corrupted. Refusing to load it."
        )
    if card.anomaly is not None:
        load_anomaly_tensors(folder, card.anomaly)  # its format, hash and shapes, as the weights'
    return card


def load_anomaly_tensors(folder: Path, card: AnomalyCard) -> dict[str, Any]:
    """The anomaly model's tensors (numpy), checked: safetensors format, the card's hash, the shapes.

    Raises:
        BundleError: A missing file, not safetensors, another hash or shapes that do not fit.
    """
    from safetensors.numpy import load

    path = bundle_dir(folder) / ANOMALY_FILE
    if not path.is_file():
        raise BundleError(f"{path} is missing: the model card names an anomaly model")
    data = path.read_bytes()
    check_safetensors(path, data)
    actual = sha256_bytes(data)
    if actual != card.weights_sha256:
        raise BundleError(
            f"{path}: hash {actual[:12]}… does not match the card's {card.weights_sha256[:12]}…; the file "
            "was changed or corrupted. Refusing to load it."
        )
    tensors = load(data)
    cells, dims = card.grid[0] * card.grid[1], card.dims
    want = {"channels": (dims,), "mean": (cells, dims), "precision": (cells, dims, dims)}
    got = {k: tuple(tensors[k].shape) if k in tensors else None for k in TENSOR_NAMES}
    if got != want:
        raise BundleError(f"{path}: tensors {got} do not fit the card's {want}. Refusing to load it.")
    return dict(tensors)


def save_bundle(net: nn.Module, folder: Path, **card_fields: Any) -> ModelCard:
    """Write weights (safetensors) then the card, each atomically."""
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    data = save(state)
    write_atomic(folder / WEIGHTS_FILE, data)
    card = ModelCard(
        weights_sha256=sha256_file(folder / WEIGHTS_FILE),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        **card_fields,
    )
    write_atomic(folder / CARD_FILE, (json.dumps(card.model_dump(mode="json"), indent=2) + "\n").encode())
    return card


def write_card(folder: Path, card: ModelCard) -> None:
    """Write a card (validated again) over a bundle's card, atomically; the weights are not touched.

    Used to add the good-only model to a trained bundle: the new card is another model (hash).
    """
    checked = ModelCard.model_validate(card.model_dump())
    stamped = checked.model_copy(update={"created_at": datetime.now(UTC).isoformat(timespec="seconds")})
    write_atomic(
        Path(folder) / CARD_FILE, (json.dumps(stamped.model_dump(mode="json"), indent=2) + "\n").encode()
    )


def load_weights_into(net: nn.Module, path: Path, card: ModelCard) -> None:
    """Load a bundle's weights into ``net``, every tensor; ``card`` is the one ``read_card`` checked.

    Raises:
        BundleError: The weights are not safetensors, not the card's (by hash), or do not fit.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    weights = bundle_dir(path) / WEIGHTS_FILE
    # The bytes loaded are the bytes checked: the file may have been swapped since read_card.
    data = weights.read_bytes()
    check_safetensors(weights, data)
    actual = sha256_bytes(data)
    if actual != card.weights_sha256:
        raise BundleError(
            f"{weights}: weights hash {actual[:12]}… does not match the card's "
            f"{card.weights_sha256[:12]}…; the file was changed or corrupted. Refusing to load it."
        )
    try:
        state = load(data)
    except SafetensorError as exc:
        raise BundleError(
            f"{weights}: not a safetensors file ({exc}); refusing to load it (model files are never unpickled)"
        ) from exc
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{path}: weights do not fit a {card.architecture}: {exc}") from exc


def load_net(path: Path) -> tuple[nn.Module, ModelCard]:
    """Rebuild the network of a bundle in eval mode on the CPU."""
    from core.model.architectures import build_model

    card = read_card(path)
    net = build_model(card.architecture, channels=card.channels, pooling=card.pooling)
    load_weights_into(net, path, card)
    return net.eval(), card
