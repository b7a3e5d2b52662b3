"""Making and judging models from a folder of labelled images.

``data`` (scanning class folders, hash-deduplicated seeded splits, manifests), ``augment``,
``config`` (``TrainConfig`` and the splits it resolves to), ``epochs`` (loss, one training pass,
validation scores), ``fit`` (``train``: the run folder, its threshold and its bundle),
``evaluation`` (the report: confusion matrices, bounded miss and false-reject rates, ROC,
misclassified parts with heatmaps).
Depends on ``core.inference``, ``core.model``, ``core.imaging`` and ``core.common``.
"""

from core.common.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"TrainConfig": "config", "train": "fit", "evaluate": "evaluation", "scan_folder": "data"},
)
