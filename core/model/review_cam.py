"""Other class-activation methods for reviewing one part (pytorch-grad-cam).

The station's heatmap is Grad-CAM computed inside the forward pass (``core.model.explain``). When a
supervisor or engineer looks at one part more closely, other methods can show other things:
Grad-CAM++ spreads the heat over several defects, EigenCAM needs no class, Score-CAM and
Ablation-CAM use no gradients at all (slower: one forward pass per channel). They run on the
PyTorch model (the bundle's weights) at review time, never on the hot path, and return the same
8-bit heatmap at the model's input size as the station keeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.model.explain import normalise_cams, to_uint8

if TYPE_CHECKING:
    from torch import nn

    from core.model.bundle import ModelCard

# Name shown to users -> pytorch-grad-cam class name.
REVIEW_METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
}


class Reviewer:
    """Explains single parts with any of ``REVIEW_METHODS``.

    Args:
        bundle: The model bundle folder (loaded without executing code, as everywhere).
        device: ``cpu`` or ``cuda``; default a GPU when present.
    """

    def __init__(self, bundle: Path, device: str | None = None) -> None:
        from core.model.bundle import load_net
        from core.model.device import pick_device

        net, card = load_net(Path(bundle))
        self.card: ModelCard = card
        self.device = pick_device(device)
        self._net: nn.Module = net.to(self.device).eval()

    def explain(
        self, image: np.ndarray, method: str = "gradcam++", *, target: int = 1
    ) -> tuple[float, np.ndarray]:
        """One uint8 grayscale image -> (bad probability, uint8 heatmap at the input size).

        Args:
            image: The part as decoded (any size; the bundle's preset resizes it).
            method: One of ``REVIEW_METHODS``.
            target: The class explained: 1 = bad (what the station shows), 0 = good.
        """
        import torch
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        from core.model.architectures import cam_target_layer

        cam_class = _cam_class(method)
        x = torch.from_numpy(self.card.preset.batch([image])).to(self.device)
        with torch.no_grad():
            score = float(torch.softmax(self._net(x), dim=1)[0, 1])
        with cam_class(model=self._net, target_layers=[cam_target_layer(self._net)]) as cam:
            if hasattr(cam, "batch_size"):
                cam.batch_size = 32  # masked copies of the part per forward pass (Score/Ablation-CAM)
            raw = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
        # pytorch-grad-cam already scales each map to 0..1 at the input size; normalising again
        # is harmless and gives the station's exact 8-bit form.
        return score, to_uint8(
            normalise_cams(np.asarray(raw, dtype=np.float32), self.card.preset.input_size)
        )[0]


def _cam_class(method: str) -> type:
    import pytorch_grad_cam

    name = REVIEW_METHODS.get(method)
    if name is None:
        raise ValueError(f"unknown heatmap method {method!r}; choose one of {', '.join(REVIEW_METHODS)}")
    return getattr(pytorch_grad_cam, name)  # type: ignore[no-any-return]
