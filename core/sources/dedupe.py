"""Has the station already decided these bytes? The rule of the hot folder's content-hash check.

- The same file again (an earlier decision with the same content hash *and* the same source
  reference): announced twice, or a crash came between the row's commit and the file's move.
  It gets no second row; the file is only moved.
- The same bytes under another name, when an earlier decision inspected them (a camera that
  resends a frozen frame): a row of its own, not inspected, whose reason names the first part
  (``duplicate_reason``), so every file that arrives is counted and nothing vanishes silently.
- Broken files that happen to share bytes (two empty files) are separate failures: no rule
  applies and each gets its own row with its own reason.

The earlier decisions come from a ``ContentLookup`` (the visual log's ``find_by_content_hash``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

from core.common.types import Decision, Verdict

DUPLICATE_PREFIX = "duplicate of "


@dataclass(frozen=True, slots=True)
class Repeat:
    """An earlier decision about the same bytes, and whether it was about this very file."""

    prior: Decision
    same_file: bool  # True: no new row; False: a "duplicate of" row


def repeat_of(earlier: Iterable[Decision], source_ref: str) -> Repeat | None:
    """How a file with ``source_ref`` repeats earlier decisions about its bytes, or None."""
    decisions = list(earlier)
    for decision in decisions:
        if decision.source_ref == source_ref:
            return Repeat(decision, same_file=True)
    inspected = [d for d in decisions if d.verdict is not Verdict.NOT_INSPECTED]
    if not inspected:
        return None
    first = min(inspected, key=lambda d: (d.created_at, d.part_id))
    return Repeat(first, same_file=False)


def duplicate_reason(prior: Decision) -> str:
    """The reason of a duplicate's row: "duplicate of <part id> (<file name>)"."""
    return f"{DUPLICATE_PREFIX}{prior.part_id} ({PurePath(prior.source_ref).name})"


def duplicate_of(earlier: Iterable[Decision], source_ref: str) -> Decision | None:
    """The earlier decision that the file repeats, either way (see ``repeat_of``), or None."""
    repeat = repeat_of(earlier, source_ref)
    return repeat.prior if repeat is not None else None
