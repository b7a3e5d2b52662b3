"""Making and judging models from a folder of labelled images.

``data`` (scanning class folders, hash-deduplicated seeded splits, manifests), ``augment``,
``fit`` (``TrainConfig``, ``train``: the run folder and its bundle), ``evaluation`` (the report:
confusion matrices, bounded miss and false-reject rates, ROC, misclassified parts with heatmaps).
Depends on ``core.inference``, ``core.model``, ``core.imaging`` and ``core.common``.
"""

from core.common.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"TrainConfig": "fit", "train": "fit", "evaluate": "evaluation", "scan_folder": "data"},
)
