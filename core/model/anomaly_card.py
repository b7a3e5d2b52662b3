"""The card of the good-only second opinion, kept inside the model card (``core.model.anomaly``).

Apart from the model so that the bundle module can validate and check it without importing the
scoring code (and the scoring code can use the bundle's checks).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ANOMALY_FILE = "anomaly.safetensors"
TENSOR_NAMES = ("channels", "mean", "precision")
DEFAULT_BUDGET = 0.01  # false-reject budget of the anomaly threshold on validation good parts


class AnomalyCard(BaseModel):
    """What the good-only model is and how it was fitted; kept inside the model card."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Anomaly model card", allow_inf_nan=False)

    method: Literal["padim"] = Field("padim", description="Per-location Gaussian of intermediate features.")
    layers: tuple[int, ...] = Field(
        min_length=1, max_length=4, description="Blocks of the classifier's features that are modelled."
    )
    dims: int = Field(ge=1, le=4096, description="Feature channels kept per cell (D).")
    grid: tuple[int, int] = Field(description="Cells of the map (rows, columns) at the model's input size.")
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description=f"SHA-256 of {ANOMALY_FILE}.")
    threshold: float = Field(ge=0.0, description="Anomaly score at or above which a part is bad.")
    false_reject_budget: float = Field(
        DEFAULT_BUDGET, ge=0.0, le=1.0, description="Share of validation good parts the threshold may reject."
    )
    fitted_on: int = Field(ge=1, description="Good images the Gaussian was fitted on (each in every view).")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Validation figures at fitting time.")
