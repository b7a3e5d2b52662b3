"""Pixels: one decode path for every image, the model's preprocessing, and heatmap overlays.

``decode`` (``decode_image``, ``read_image``, ``DecodeError``), ``headers`` (what a file's header
says, read before decoding: size, decode memory, truncation), ``preprocess`` (``Preset``: the one eval preset shared by training and the line),
``overlay`` (``make_overlay``). Depends on ``core.common`` only.
"""

from core.common.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DecodeError": "decode",
        "TruncatedError": "decode",
        "IMAGE_SUFFIXES": "decode",
        "decode_image": "decode",
        "read_image": "decode",
        "Preset": "preprocess",
        "make_overlay": "overlay",
    },
)
