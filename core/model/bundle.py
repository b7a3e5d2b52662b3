"""The model bundle: weights in safetensors plus a JSON card, loaded without executing code.

A bundle is a folder holding ``model.safetensors`` and ``model.json``. The card records the
architecture, the preprocessing preset, the class names, the chosen threshold, the hash of the
training data and of the weights, and the metrics. A bundle whose weights do not match the hash
on its card is refused.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core import __version__
from core.common.fileio import sha256_file, write_atomic
from core.imaging.preprocess import Preset

if TYPE_CHECKING:
    from torch import nn

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
FORMAT_VERSION = 1


class BundleError(RuntimeError):
    """A model bundle that cannot be used; the message says why and what to do."""


class ModelCard(BaseModel):
    """Everything needed to rebuild and trust a trained model."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Model card")

    format_version: int = Field(FORMAT_VERSION, description="Version of this card's schema.")
    name: str = Field(description="Human name of the model, shown to operators.")
    architecture: str = Field(description="One of core.model.architectures.ARCHITECTURES.")
    input_size: int = Field(description="Square input side in pixels.")
    channels: int = Field(1, description="1 for grayscale, 3 for RGB.")
    mean: float = Field(0.5, description="Normalisation mean on the 0..1 scale.")
    std: float = Field(0.25, description="Normalisation standard deviation on the 0..1 scale.")
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
    weights_sha256: str = Field(description="SHA-256 of the safetensors file.")
    training_data_hash: str | None = Field(
        None, description="Hash of the sorted content hashes of the training images."
    )
    metrics: dict[str, Any] = Field(default_factory=dict, description="Validation figures at training time.")
    created_at: str = Field(description="UTC time the bundle was written, ISO 8601.")
    software_version: str = Field(__version__, description="inspector version that wrote the bundle.")

    @property
    def preset(self) -> Preset:
        return Preset(input_size=self.input_size, channels=self.channels, mean=self.mean, std=self.std,
                      normalisation=self.normalisation)  # fmt: skip

    @property
    def short_hash(self) -> str:
        return self.weights_sha256[:12]


def bundle_dir(path: Path) -> Path:
    """Accept the bundle folder or either of its files."""
    path = Path(path)
    return path.parent if path.name in (WEIGHTS_FILE, CARD_FILE) else path


def read_card(path: Path) -> ModelCard:
    """Read and check a bundle's card and the hash of its weights; nothing is executed."""
    folder = bundle_dir(path)
    card_path, weights_path = folder / CARD_FILE, folder / WEIGHTS_FILE
    if not card_path.is_file() or not weights_path.is_file():
        raise BundleError(f"{folder} is not a model bundle: it needs {CARD_FILE} and {WEIGHTS_FILE}")
    try:
        card = ModelCard.model_validate_json(card_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BundleError(f"{card_path}: unreadable model card: {exc}") from exc
    actual = sha256_file(weights_path)
    if actual != card.weights_sha256:
        raise BundleError(
            f"{weights_path}: weights hash {actual[:12]}… does not match the card's "
            f"{card.weights_sha256[:12]}…; the file was changed or corrupted. Refusing to load it."
        )
    return card


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


def load_weights_into(net: nn.Module, path: Path, card: ModelCard) -> None:
    """Load a bundle's weights into ``net``, every tensor; ``card`` is the one ``read_card`` checked."""
    from safetensors.torch import load_file

    state = load_file(str(bundle_dir(path) / WEIGHTS_FILE))
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
