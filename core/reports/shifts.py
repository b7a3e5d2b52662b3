"""Shifts: named local start times (e.g. 06:00 early, 14:00 late, 22:00 night) turned into UTC spans.

A shift runs from its start to the next shift's start; the last shift of a day runs into the
next day and belongs to the day it starts on. Local times are converted with the plan's time
zone, so a shift that spans a daylight-saving change is an hour shorter or longer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.storage.records import ShiftDefinition

DEFAULT_PLAN = "06:00=early,14:00=late,22:00=night"

_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_NAME = re.compile(r"[^\W\d][\w-]*")  # a word: usable in a file name and in --shift DATE/NAME


@dataclass(frozen=True, slots=True, kw_only=True)
class Shift:
    """One occurrence of a shift."""

    name: str
    day: date  # the local date the shift starts on
    start: datetime  # UTC
    end: datetime  # UTC, excluded
    zone: tzinfo

    @property
    def local_start(self) -> datetime:
        return self.start.astimezone(self.zone)

    @property
    def local_end(self) -> datetime:
        return self.end.astimezone(self.zone)

    @property
    def label(self) -> str:
        return f"{self.day.isoformat()}/{self.name}"


def zone_named(name: str | None) -> tuple[tzinfo, str]:
    """The time zone of an IANA name, or of this computer when ``name`` is None or ``local``.

    Raises:
        ValueError: An unknown name.
    """
    if name and name != "local":
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from exc
    return _local_zone()


def _local_zone() -> tuple[tzinfo, str]:
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return ZoneInfo(env), env
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    try:
        target = str(localtime.resolve())
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        key = target.split("zoneinfo/", 1)[1]
        try:
            return ZoneInfo(key), key
        except (ZoneInfoNotFoundError, ValueError):
            pass
    # No zone database entry to name (e.g. Windows without tzdata): today's offset; daylight
    # saving changes then shift the boundaries by an hour.
    offset = datetime.now().astimezone().tzinfo
    assert offset is not None
    return offset, "local"


class ShiftPlan:
    """The shifts of a day, in one time zone.

    Args:
        starts: (name, local start time) pairs, any order; at least one.
        zone: The time zone of the local times.
        zone_name: A readable name of the zone (for reports).

    Raises:
        ValueError: Duplicate names or start times, or a name that is not a word.
    """

    def __init__(self, starts: Sequence[tuple[str, time]], zone: tzinfo, zone_name: str) -> None:
        if not starts:
            raise ValueError("a shift plan needs at least one shift")
        names = [name for name, _ in starts]
        if len(set(names)) != len(names) or len({t for _, t in starts}) != len(starts):
            raise ValueError("shift names and start times must be unique")
        for name in names:
            if not _NAME.fullmatch(name):
                raise ValueError(f"shift name {name!r}: use a word (letters, digits, - and _)")
        self.starts = sorted(starts, key=lambda item: item[1])
        self.zone = zone
        self.zone_name = zone_name

    @classmethod
    def parse(cls, text: str, timezone: str | None = None) -> ShiftPlan:
        """A plan from ``"06:00=early,14:00=late,22:00=night"``.

        Raises:
            ValueError: The text or the time zone is not understood.
        """
        starts = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            clock, _, name = item.partition("=")
            match = _HH_MM.fullmatch(clock.strip())
            if not match or not name.strip():
                raise ValueError(f"shift {item!r}: write HH:MM=name, e.g. 06:00=early")
            starts.append((name.strip(), time(int(match[1]), int(match[2]))))
        zone, zone_name = zone_named(timezone)
        return cls(starts, zone, zone_name)

    @classmethod
    def from_definitions(cls, shifts: Sequence[ShiftDefinition], timezone: str | None = None) -> ShiftPlan:
        """A plan from the shifts stored in the visual log; ``timezone`` overrides theirs."""
        if not shifts:
            raise ValueError("no shifts are configured")
        zone, zone_name = zone_named(timezone or shifts[0].timezone)
        starts = [(s.name, time.fromisoformat(s.start)) for s in shifts]
        return cls(starts, zone, zone_name)

    def definitions(self) -> list[ShiftDefinition]:
        """The plan as stored in the visual log."""
        zone = None if self.zone_name == "local" else self.zone_name
        return [ShiftDefinition(name=n, start=t.strftime("%H:%M"), timezone=zone) for n, t in self.starts]

    def __str__(self) -> str:
        shifts = ",".join(f"{t.strftime('%H:%M')}={n}" for n, t in self.starts)
        return f"{shifts} ({self.zone_name})"

    # ---------------------------------------------------------------- occurrences

    def shifts_of(self, day: date) -> list[Shift]:
        """The shifts starting on a local date, in order."""
        result = []
        for index, (name, start) in enumerate(self.starts):
            if index + 1 < len(self.starts):
                end_day, end = day, self.starts[index + 1][1]
            else:
                end_day, end = day + timedelta(days=1), self.starts[0][1]
            result.append(
                Shift(
                    name=name,
                    day=day,
                    start=self._utc(day, start),
                    end=self._utc(end_day, end),
                    zone=self.zone,
                )
            )
        return result

    def shift_on(self, day: date, name: str) -> Shift:
        for shift in self.shifts_of(day):
            if shift.name == name:
                return shift
        raise ValueError(f"no shift named {name!r}; the plan is {self}")

    def shift_at(self, when: datetime) -> Shift:
        """The shift a moment belongs to."""
        if when.tzinfo is None:
            raise ValueError("give an aware datetime")
        day = when.astimezone(self.zone).date()
        for candidate in (*self.shifts_of(day - timedelta(days=1)), *self.shifts_of(day)):
            if candidate.start <= when < candidate.end:
                return candidate
        raise AssertionError(f"no shift covers {when}")  # the plan covers every moment

    def previous(self, shift: Shift) -> Shift:
        return self.shift_at(shift.start - timedelta(microseconds=1))

    def resolve(self, spec: str, now: datetime) -> Shift:
        """The shift a user means.

        ``current``; ``previous`` (or ``last``: the last one that has ended); ``DATE/NAME``
        (``2025-03-14/night``: the night shift that starts on that date); a local time
        (``2025-03-14T07:30``: the shift that covers it); a bare name (its latest occurrence
        that has started).

        Raises:
            ValueError: The spec is not understood.
        """
        spec = spec.strip()
        current = self.shift_at(now)
        if spec == "current":
            return current
        if spec in ("previous", "last"):
            return self.previous(current)
        if "/" in spec:
            day_text, _, name = spec.partition("/")
            try:
                day = date.fromisoformat(day_text)
            except ValueError as exc:
                raise ValueError(f"shift {spec!r}: write DATE/NAME, e.g. 2025-03-14/early") from exc
            return self.shift_on(day, name)
        if any(name == spec for name, _ in self.starts):
            shift = current
            while shift.name != spec:
                shift = self.previous(shift)
            return shift
        try:
            moment = datetime.fromisoformat(spec)
        except ValueError as exc:
            raise ValueError(
                f"shift {spec!r}: use current, previous, DATE/NAME, a local time or a shift name"
            ) from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return self.shift_at(moment)

    def _utc(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tzinfo=self.zone).astimezone(UTC)
