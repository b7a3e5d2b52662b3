"""Typed records of the visual log other than ``Decision`` (which lives in ``core.common.types``).

Frozen dataclasses: they cross thread and module boundaries; ORM rows never leave
``core.storage``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.common.types import Decision, Verdict


class Role(enum.StrEnum):
    """What a user may do; ``core.storage.auth.ROLE_PERMISSIONS`` says exactly what."""

    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ENGINEER = "engineer"
    ADMIN = "admin"


# The user recorded for actions the station takes by itself (a threshold set at start-up).
SYSTEM_USER = "system"


class ReviewOutcome(enum.StrEnum):
    """A supervisor's review either confirms the model's verdict or overrides it."""

    CONFIRMED = "confirmed"
    OVERRIDDEN = "overridden"


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    name: str
    role: Role
    display_name: str | None
    active: bool
    created_at: datetime  # UTC
    has_password: bool = False  # False: the user cannot log in (revision 0005)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessEvent:
    """A log-in, a failed log-in, or an action refused to a user (see ``core.storage.auth``)."""

    created_at: datetime  # UTC
    station: str  # the station whose log was asked
    user: str  # the name as given (a failed log-in may name nobody registered)
    event: str  # "login", "login_failed", "login_throttled", "denied", "first_admin", "password_set"
    action: str | None  # what was asked, for "denied"
    detail: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdChange:
    """Who changed a station's threshold, when, from what to what, and why."""

    station: str
    seq: int  # position in the station's hash chain
    created_at: datetime  # UTC
    user: str
    old: float | None  # None for the first threshold a station records
    new: float
    reason: str
    model_hash: str | None
    # What the person saw before applying it (the what-if figures), as stored; None when none.
    evidence: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Review:
    """A supervisor's confirmation or override of one decision; the decision itself is unchanged."""

    station: str
    seq: int
    created_at: datetime  # UTC
    part_id: str
    user: str
    verdict: Verdict  # what the supervisor says the part is: good or bad
    outcome: ReviewOutcome
    comment: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainHead:
    """The newest link of a station's hash chain: print it, and later prove nothing changed before it."""

    seq: int  # 0: nothing recorded yet
    hash: str  # hex SHA-256

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainVerification:
    """The result of walking one station's hash chain from its first record.

    Attributes:
        station: The station whose chain was checked.
        ok: True when every link holds and the chain ends at the recorded head.
        records: Live records checked (decisions, threshold changes, reviews).
        pruned: Records removed by retention, covered by recorded checkpoints.
        head: The head the station's row records (or, with ``until_seq``, the link checked last).
        broken_at: Sequence number of the first broken link, when not ``ok``.
        problem: What is wrong, in words, when not ``ok``.
    """

    station: str
    ok: bool
    records: int
    pruned: int
    head: ChainHead
    broken_at: int | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HourCount:
    """Decisions per verdict in one UTC hour."""

    hour: datetime  # start of the hour, UTC
    good: int
    bad: int
    not_inspected: int

    @property
    def total(self) -> int:
        return self.good + self.bad + self.not_inspected


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """A model version the log knows: the SHA-256 of its file, a name, its card as stored."""

    hash: str
    name: str | None
    metadata: dict[str, Any] | None
    created_at: datetime  # UTC, when the log first saw it


@dataclass(frozen=True, slots=True, kw_only=True)
class ShiftDefinition:
    """One shift of the plan: its name and the local time it starts; it ends when the next starts."""

    name: str
    start: str  # "HH:MM", local time of ``timezone``
    timezone: str | None = None  # IANA name; None: the station computer's local zone


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRecord:
    """A decision together with what the report needs about it (its review, its model's name)."""

    decision: Decision
    seq: int
    model_name: str | None
    review: Review | None  # the newest review, if any


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaProblem:
    """A decision's image or heatmap file that is not what the log recorded."""

    part_id: str
    path: str  # relative to the media root
    problem: str  # "missing" or "changed"


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaVerification:
    """The result of re-hashing one station's media files against the hashes in its chain.

    Attributes:
        station: The station checked.
        files: Files named by live decisions and checked (pruned decisions have none).
        unhashed: Files of decisions written before the chain covered media (revision 0003):
            only checked to exist.
        problems: Files missing or changed, in chain order.
    """

    station: str
    files: int
    unhashed: int
    problems: tuple[MediaProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems
