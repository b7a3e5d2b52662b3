"""Has the station already decided these bytes? The rule of the hot folder's content-hash check.

A file is a duplicate of an earlier decision with the same content hash when that decision was an
inspection (the same image sent again: inspected once), or when it was about this very file
(announced again, or a crash came between the row's commit and the file's move). Broken files that
happen to share bytes (two empty files) are separate failures and each gets its own row. The
earlier decisions come from a ``ContentLookup`` (the visual log's ``find_by_content_hash``).
"""

from __future__ import annotations

from collections.abc import Iterable

from core.common.types import Decision, Verdict


def duplicate_of(earlier: Iterable[Decision], source_ref: str) -> Decision | None:
    """The earlier decision that makes a file with ``source_ref`` a duplicate, or None."""
    for decision in earlier:
        if decision.verdict is not Verdict.NOT_INSPECTED or decision.source_ref == source_ref:
            return decision
    return None
