"""Where parts come from. Every source gives ``Part``s through one interface.

A source hands out a part with ``next_part`` and is told with ``acknowledge`` once the part's row
is committed; only then may it let go of the original (a hot-folder file moves out of the inbox
only after that). When the row could not be stored (disk full, database locked) the station calls
``release`` instead and the source keeps the original for a later try.

Each source has its own backpressure policy (``Source.backpressure``):

- ``Backpressure.WAIT``: the producer waits and nothing is dropped. A hot folder's backlog waits
  in the inbox; a video file is read only as fast as parts are inspected.
- ``Backpressure.RECORD_OVERFLOW``: a live camera cannot wait. Parts go into a small bounded
  queue; when it is full the oldest queued part makes room for the newest and comes back from
  ``next_part`` as a not-inspected part (``error`` says why), so every lost part is one row.

Spec strings (``open_source``): ``hotfolder:DIR``, ``camera:INDEX``, ``camera:URL`` (RTSP, HTTP
MJPEG, anything OpenCV's FFmpeg opens), ``video:FILE`` and, with the optional ``harvesters``
package, ``genicam:CTI_FILE[#SERIAL]``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from core.common.types import Decision, Part


class Backpressure(enum.StrEnum):
    """What a source does when parts arrive faster than the station inspects them."""

    WAIT = "wait"
    RECORD_OVERFLOW = "record_overflow"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatus:
    """How a source is doing, for the operator's status line and the line's outputs.

    ``message`` is stable for as long as the state lasts (the station reports a change, not every
    poll). ``warning`` is a problem the operator must see while the source still delivers (a run
    of duplicate files, files that cannot be moved out of the inbox): the station raises an
    alarm while it is set and clears it when it is empty again; it too stays the same text while
    the problem lasts. Counters are totals since the source was opened.
    """

    online: bool
    message: str
    since: datetime = field(default_factory=_utc_now)  # when this state began, UTC
    frames: int = 0  # frames (cameras) or files (folders) received
    parts: int = 0  # parts handed to the station, overflow parts included
    overflowed: int = 0  # parts that found the queue full: not inspected
    reconnects: int = 0
    backlog: int = 0  # parts or files waiting at the source
    finished: bool = False  # a source with an end (a video file) has no more parts
    warning: str = ""  # an alarm for the operator while the source still works; "" when none

    @property
    def state(self) -> tuple[bool, str]:
        """What changes when the operator should be told of the source's state (the warning is
        told apart, as an alarm)."""
        return self.online, self.message


@runtime_checkable
class Source(Protocol):
    """Where parts come from. Made and used on the inspection worker's thread."""

    description: str
    backpressure: Backpressure

    def next_part(self, timeout_s: float) -> Part | None:
        """The next part, waiting up to ``timeout_s``; None when none arrived."""
        ...

    def acknowledge(self, part: Part, decision: Decision) -> None:
        """The part's decision is committed: the source may release or move the original."""
        ...

    def release(self, part: Part) -> None:
        """The part's decision could not be stored: keep the original and offer it again later."""
        ...

    def status(self) -> SourceStatus:
        """The current state; cheap, called by the station on every poll."""
        ...

    def stop(self) -> None:
        """Stop acquiring. Parts already acquired (a camera's queue) still come from ``next_part``."""
        ...

    def close(self) -> None:
        """Stop and let go of every handle and thread. Closing twice is fine."""
        ...


_URL_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt"})

# Looks up earlier decisions about the same bytes: content hash -> this station's decisions.
ContentLookup = Callable[[str], list[Decision]]


def parse_spec(spec: str) -> tuple[str, str]:
    """``kind:target`` -> (kind, target); a bare existing folder means ``hotfolder``."""
    kind, sep, target = spec.partition(":")
    if not sep or len(kind) == 1:  # "C:\\inbox" is a Windows path, not a kind
        return "hotfolder", spec
    if kind.lower() in _URL_SCHEMES:  # a bare camera URL
        return "camera", spec
    return kind.lower(), target
