"""Has the station already decided these bytes? The content-hash check of the hot folder.

The rule (``duplicate_of``): a file is a duplicate of an earlier decision with the same content
hash when that decision was an inspection (the same image sent again: inspected once), or when it
was about this very file (announced again, or a crash came between the row's commit and the
file's move). Broken files that happen to share bytes (two empty files) are separate failures
and each gets its own row.

``content_lookup`` gives the function that asks the visual log. The log is to offer this query
itself (``VisualLog.find_by_content_hash``); until it does, a read-only query on the log's
engine stands in for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from core.sources import ContentLookup
from core.types import Decision, Verdict

if TYPE_CHECKING:
    from core.storage import VisualLog


def duplicate_of(earlier: Iterable[Decision], source_ref: str) -> Decision | None:
    """The earlier decision that makes a file with ``source_ref`` a duplicate, or None."""
    for decision in earlier:
        if decision.verdict is not Verdict.NOT_INSPECTED or decision.source_ref == source_ref:
            return decision
    return None


def content_lookup(visual_log: VisualLog) -> ContentLookup:
    """content hash -> this station's decisions with those bytes, oldest first.

    Reads only; call it on the thread that owns ``visual_log``.
    """
    method = getattr(visual_log, "find_by_content_hash", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    return _EngineLookup(visual_log)


class _EngineLookup:
    """Stand-in for ``VisualLog.find_by_content_hash`` (remove once the log has it).

    One indexed query (``ix_decisions_content_hash``) for the part ids, then ``VisualLog.get``
    for typed decisions, so no ORM row leaves ``core.storage``.
    """

    def __init__(self, visual_log: VisualLog) -> None:
        from sqlalchemy import text

        self._log = visual_log
        self._query = text(
            "SELECT d.part_id FROM decisions AS d JOIN stations AS s ON s.id = d.station_id"
            " WHERE d.content_hash = :content_hash AND s.name = :station"
            " ORDER BY d.created_at, d.part_id"
        )

    def __call__(self, content_hash: str) -> list[Decision]:
        from core.storage.errors import environment_errors

        with environment_errors(str(self._log)), self._log.engine.connect() as connection:
            ids = [
                row[0]
                for row in connection.execute(
                    self._query, {"content_hash": content_hash, "station": self._log.station}
                )
            ]
        found = (self._log.get(part_id) for part_id in ids)
        return [decision for decision in found if decision is not None]
