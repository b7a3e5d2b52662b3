"""What the station's run loop tells its subscribers: typed, frozen events, emitted in order.

``StationStarted`` (a runtime was built, at start and after each rebuild), ``PartInspected`` (a
decision was committed), ``SourceStatusChanged`` (the source's state changed), ``AlarmRaised`` and
``AlarmCleared`` (one alarm per ``AlarmKind``; raised again while it lasts, with the new message),
``AlarmAcknowledged`` (the operator acknowledged one; recorded in the log) and ``StationStopped``
(last, once). The headless driver prints them; the GUI worker forwards
them as Qt signals.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.common.types import InspectedPart
from core.sources.base import SourceStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class StationInfo:
    """What the operator is shown about a running station; copied on its thread at start-up."""

    station_name: str
    source_description: str
    model_name: str
    model_hash: str | None
    threshold: float
    log_url: str | None = None  # the visual log, for readers on other threads (shift counters)
    media_root: str | None = None

    @property
    def short_hash(self) -> str:
        """The model hash as shown: its first 8 characters."""
        return (self.model_hash or "")[:8]


class AlarmKind(enum.StrEnum):
    """What an alarm is about; at most one alarm of each kind is raised at a time."""

    SOURCE = "source"  # the source is offline (camera unplugged, inbox gone)
    SOURCE_WARNING = "source_warning"  # the source works but warns (duplicates, stuck files)
    STORAGE = "storage"  # rows cannot be stored (disk full, database locked): parts wait
    STATION = "station"  # the runtime could not be built or failed: it is being rebuilt
    MODEL = "model"  # the model bundle is missing or refused: the station cannot start
    NO_PARTS = "no_parts"  # the source is online but no part came for longer than expected
    DISK = "disk"  # the media or log folder's disk is nearly full
    BAD_RUN = "bad_run"  # N bad parts in a row: the line may be making scrap


@dataclass(frozen=True, slots=True, kw_only=True)
class StationStarted:
    info: StationInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class PartInspected:
    item: InspectedPart


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatusChanged:
    status: SourceStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmRaised:
    kind: AlarmKind
    message: str  # one line, technical (what the headless station prints and the log keeps)
    retry_in_s: float | None = None  # when the loop tries again, if it does
    plain: str = ""  # what happened, in the operator's words (``core.station.alarm_words``)
    fix: str = ""  # what to do about it


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmCleared:
    kind: AlarmKind


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmAcknowledged:
    kind: AlarmKind
    user: str  # the logged-in user, else "operator"
    message: str  # the alarm's words as the operator saw them
    recorded: bool  # the acknowledgement is in the visual log (False: no log reachable)


@dataclass(frozen=True, slots=True, kw_only=True)
class StationStopped:
    parts_done: int  # decisions committed by every runtime of this run
    finished: bool  # the source ended or ``max_parts`` were done (not a stop request)


StationEvent = (
    StationStarted
    | PartInspected
    | SourceStatusChanged
    | AlarmRaised
    | AlarmCleared
    | AlarmAcknowledged
    | StationStopped
)
