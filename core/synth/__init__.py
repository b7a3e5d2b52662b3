"""Generated parts: cast impeller-like pictures, good or with defects, for the demo and the tests.

``parts`` renders a part (``render_part``, ``part_image``), ``defects`` draws the defect kinds on
it, ``dataset`` writes a labelled folder (``generate_dataset``) and ``feeder`` drops parts into a
hot folder at a steady rate (``feed_hot_folder``); ``geometry`` holds what the first two share.
Depends on ``core.common`` only; nothing on the line needs it.
"""

from core.common.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFECT_KINDS": "defects",
        "Defect": "defects",
        "PartSpec": "parts",
        "render_part": "parts",
        "part_image": "parts",
        "generate_dataset": "dataset",
        "feed_hot_folder": "feeder",
    },
)
