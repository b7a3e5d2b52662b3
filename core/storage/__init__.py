"""The visual log: every decision, its image and its heatmap, kept append-only.

ORM rows stay inside this package; callers see ``core.types.Decision``. Nothing here opens a
database at import time.
"""

from core.storage.db import make_engine
from core.storage.errors import DuplicatePartError, StorageError
from core.storage.log import VisualLog

__all__ = ["DuplicatePartError", "StorageError", "VisualLog", "make_engine"]
