"""The visual log: every decision, its image and its heatmap, kept append-only and hash-chained.

ORM rows stay inside this package; callers see ``core.common.types.Decision`` and the records of
``core.storage.records``. Nothing here opens a database at import time, and importing the package
itself loads nothing heavy: the names below are imported on first use, so that the command line
(which looks up ``core.cli.storage``) starts without SQLAlchemy and OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

_WHERE = {
    "make_engine": "core.storage.db",
    "DuplicatePartError": "core.storage.errors",
    "NotAllowedError": "core.storage.errors",
    "StorageError": "core.storage.errors",
    "Entry": "core.storage.writing",
    "VisualLog": "core.storage.log",
    "ChainHead": "core.storage.records",
    "ChainVerification": "core.storage.records",
    "DecisionRecord": "core.storage.records",
    "HourCount": "core.storage.records",
    "MediaProblem": "core.storage.records",
    "MediaVerification": "core.storage.records",
    "ModelInfo": "core.storage.records",
    "Review": "core.storage.records",
    "ReviewOutcome": "core.storage.records",
    "Role": "core.storage.records",
    "ShiftDefinition": "core.storage.records",
    "ThresholdChange": "core.storage.records",
    "User": "core.storage.records",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'core.storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value
