"""The live screen's state, without widgets: counters, alarms waiting for acknowledgement and
the station's state in one word, so the rules can be read (and tested) apart from the painting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from core.sources.base import SourceStatus
from core.station.alarm_words import words_for
from core.station.events import AlarmKind, AlarmRaised

# Alarms that mean no current verdict reaches the screen: the banner is greyed out with its age.
NOT_DELIVERING = frozenset({AlarmKind.SOURCE, AlarmKind.NO_PARTS, AlarmKind.STATION, AlarmKind.STORAGE})


@dataclass(frozen=True, slots=True)
class Counters:
    """Counters as shown. ``inspected`` = good + bad; ``total`` includes not inspected."""

    total: int
    good: int
    bad: int
    not_inspected: int
    parts_per_min: float

    @property
    def inspected(self) -> int:
        return self.good + self.bad

    @property
    def yield_pct(self) -> float | None:
        """Good parts as a share of the inspected ones; None before the first verdict."""
        return 100.0 * self.good / self.inspected if self.inspected else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShiftCounts:
    """The current shift's counts as the log (and the shift report) has them."""

    shift: str  # e.g. "2026-12-03/early"
    start: datetime  # local
    good: int
    bad: int
    not_inspected: int

    @property
    def total(self) -> int:
        return self.good + self.bad + self.not_inspected


@dataclass(slots=True, kw_only=True)
class AlarmEntry:
    """An alarm the operator has to acknowledge (it stays after its cause is over, marked so)."""

    kind: AlarmKind | None  # None: the inspection stopped (not an alarm of the loop)
    plain: str
    fix: str
    detail: str  # the technical line: a tooltip and the log, never the headline
    raised_at: datetime
    cleared_at: datetime | None = None

    def text(self) -> str:
        head = f"⚠  {self.raised_at:%H:%M:%S}   {self.plain}"
        if self.cleared_at is not None:
            head += f"   (over since {self.cleared_at:%H:%M:%S})"
        return f"{head}\n{self.fix}" if self.fix else head


@dataclass(slots=True)
class AlarmBoard:
    """Alarms raised and not yet acknowledged, the newest last; one entry per kind."""

    entries: list[AlarmEntry] = field(default_factory=list)

    def raised(self, event: AlarmRaised, now: datetime) -> bool:
        """Record a raised alarm; True when it is new (not a re-raise of one waiting)."""
        plain, fix = (event.plain, event.fix) if event.plain else words_for(event.kind)
        for entry in self.entries:
            if entry.kind is event.kind:
                entry.plain, entry.fix, entry.detail, entry.cleared_at = plain, fix, event.message, None
                return False
        self.entries.append(
            AlarmEntry(kind=event.kind, plain=plain, fix=fix, detail=event.message, raised_at=now)
        )
        return True

    def stopped(self, now: datetime) -> None:
        self.entries.append(
            AlarmEntry(
                kind=None,
                plain="Inspection stopped",
                fix="Restart the station; if it stops again, call the supervisor.",
                detail="the station's run loop ended while the window is open",
                raised_at=now,
            )
        )

    def cleared(self, kind: AlarmKind, now: datetime) -> None:
        for entry in self.entries:
            if entry.kind is kind and entry.cleared_at is None:
                entry.cleared_at = now

    def acknowledge(self) -> AlarmEntry | None:
        """Remove and return the newest entry (the one shown)."""
        return self.entries.pop() if self.entries else None

    @property
    def newest(self) -> AlarmEntry | None:
        return self.entries[-1] if self.entries else None


def station_state(
    *,
    started: bool,
    stopped: bool,
    active: dict[AlarmKind, AlarmRaised],
    source_status: SourceStatus | None,
    idle_s: float | None,
) -> tuple[str, str]:
    """(level, words) of the station's state, worst news first; level is ok, warn or alarm.

    Args:
        started: a runtime was built at least once.
        stopped: the run loop ended.
        active: the alarms raised and not cleared, by kind.
        source_status: the source's last state.
        idle_s: seconds since the last part (None before the first one).
    """
    if stopped:
        return "alarm", "STOPPED"
    station = active.get(AlarmKind.STATION)
    if station is not None:
        model = station.plain == words_for(AlarmKind.MODEL)[0]
        return "alarm", "MODEL MISSING" if model else "RESTARTING"
    if AlarmKind.SOURCE in active or (source_status is not None and not source_status.online):
        return "alarm", "SOURCE OFFLINE · reconnecting"
    if AlarmKind.STORAGE in active:
        return "alarm", "DATABASE UNAVAILABLE"
    if AlarmKind.NO_PARTS in active:
        return "warn", f"NO PARTS FOR {format_age(idle_s)}" if idle_s is not None else "NO PARTS YET"
    if AlarmKind.DISK in active:
        return "warn", "DISK NEARLY FULL"
    if not started:
        return "warn", "STARTING"
    return "ok", "WATCHING"


def format_age(seconds: float | None) -> str:
    """``42 s``, ``3 min``, ``2 h 05 min``."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def format_score(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.3f}"
