"""The network and its bundle: architectures, the card and weights on disk, Grad-CAM, the device.

``architectures`` (``ARCHITECTURES``, ``build_model``), ``bundle`` (``ModelCard``, ``load_net``,
``save_bundle``, ``BundleError``: safetensors weights and a hashed card), ``explain`` (score and
Grad-CAM in one forward pass), ``review_cam`` (other CAM methods for a closer look), ``device``
(CUDA when present). Depends on ``core.imaging`` and ``core.common``.
"""

from core.common.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ARCHITECTURES": "architectures",
        "build_model": "architectures",
        "BundleError": "bundle",
        "ModelCard": "bundle",
        "load_net": "bundle",
        "read_card": "bundle",
        "save_bundle": "bundle",
        "pick_device": "device",
        "default_threads": "device",
        "Reviewer": "review_cam",
    },
)
