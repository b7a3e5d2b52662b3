"""What the station's run loop tells its subscribers: typed, frozen events, emitted in order.

``StationStarted`` (a runtime was built, at start and after each rebuild), ``PartInspected`` (a
decision was committed), ``SourceStatusChanged`` (the source's state changed), ``AlarmRaised`` and
``AlarmCleared`` (one alarm per ``AlarmKind``; raised again while it lasts, with the new message)
and ``StationStopped`` (last, once). The headless driver prints them; the GUI worker forwards
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
    message: str  # one line for the operator
    retry_in_s: float | None = None  # when the loop tries again, if it does


@dataclass(frozen=True, slots=True, kw_only=True)
class AlarmCleared:
    kind: AlarmKind


@dataclass(frozen=True, slots=True, kw_only=True)
class StationStopped:
    parts_done: int  # decisions committed by every runtime of this run
    finished: bool  # the source ended or ``max_parts`` were done (not a stop request)


StationEvent = (
    StationStarted | PartInspected | SourceStatusChanged | AlarmRaised | AlarmCleared | StationStopped
)
