"""The visual log: every decision, its image and its heatmap, kept append-only and hash-chained.

ORM rows stay inside this package; callers see ``core.common.types.Decision`` and the records of
``core.storage.records``. Nothing here opens a database at import time, and importing the package
itself loads nothing heavy: the names below are imported on first use, so that the command line
(which looks up ``core.cli.storage``) starts without SQLAlchemy and OpenCV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.common.lazy import lazy_exports

if TYPE_CHECKING:  # the explicit re-exports type checkers see
    from core.storage.db import make_engine as make_engine
    from core.storage.errors import DuplicatePartError as DuplicatePartError
    from core.storage.errors import NotAllowedError as NotAllowedError
    from core.storage.errors import StorageError as StorageError
    from core.storage.log import VisualLog as VisualLog
    from core.storage.records import ChainHead as ChainHead
    from core.storage.records import ChainVerification as ChainVerification
    from core.storage.records import DecisionRecord as DecisionRecord
    from core.storage.records import HourCount as HourCount
    from core.storage.records import MediaProblem as MediaProblem
    from core.storage.records import MediaVerification as MediaVerification
    from core.storage.records import ModelInfo as ModelInfo
    from core.storage.records import Review as Review
    from core.storage.records import ReviewOutcome as ReviewOutcome
    from core.storage.records import Role as Role
    from core.storage.records import ShiftDefinition as ShiftDefinition
    from core.storage.records import ThresholdChange as ThresholdChange
    from core.storage.records import User as User
    from core.storage.writing import Entry as Entry

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "make_engine": "db",
        "DuplicatePartError": "errors",
        "NotAllowedError": "errors",
        "StorageError": "errors",
        "Entry": "writing",
        "VisualLog": "log",
        "ChainHead": "records",
        "ChainVerification": "records",
        "DecisionRecord": "records",
        "HourCount": "records",
        "MediaProblem": "records",
        "MediaVerification": "records",
        "ModelInfo": "records",
        "Review": "records",
        "ReviewOutcome": "records",
        "Role": "records",
        "ShiftDefinition": "records",
        "ThresholdChange": "records",
        "User": "records",
    },
)
__all__ = sorted(__dir__())
