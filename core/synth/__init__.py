"""Generated parts: cast impeller-like pictures, good or with defects, for the demo and the tests.

``parts`` (``render_part``, ``part_image``, ``generate_dataset``, ``feed_hot_folder``). Depends on
``core.common`` only; nothing on the line needs it.
"""

from core.common.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "render_part": "parts",
        "part_image": "parts",
        "generate_dataset": "parts",
        "feed_hot_folder": "parts",
    },
)
