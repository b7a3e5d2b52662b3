"""History review: the whole visual log (every station) filtered, sorted and read in keyset pages.

A supervisor browses months of decisions. ``OFFSET`` pagination reads and throws away every row
before the page, so page 10,000 of a large log would take seconds; here a page is found by key
("the rows after this time and part id"), a short range of an index (revision 0006) however deep
it lies. The last page is the first page of the reversed order; a previous page is the page
before the first row shown, read in reverse.

The query and the results are frozen dataclasses; ORM rows stay in ``core.storage``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, literal, select, tuple_
from sqlalchemy.orm import aliased

from core.common.types import Decision, Verdict
from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.queries import _DECISIONS, _to_decision
from core.storage.records import ReviewOutcome
from core.storage.schema import DecisionRow, ModelVersion, ReviewRow, Station, UTCDateTime

MAX_PAGE = 1000


class ReviewState(enum.StrEnum):
    """Which decisions a history query keeps by their reviews (the newest review counts)."""

    UNREVIEWED = "unreviewed"
    REVIEWED = "reviewed"
    CONFIRMED = "confirmed"  # the newest review confirms the model's verdict
    OVERRIDDEN = "overridden"  # the newest review says otherwise


class HistorySort(enum.StrEnum):
    """Orders of the history. Score orders list inspected parts only (a not-inspected part has none)."""

    NEWEST = "newest"
    OLDEST = "oldest"
    SCORE_HIGH = "score_high"
    SCORE_LOW = "score_low"

    @property
    def by_score(self) -> bool:
        return self in (HistorySort.SCORE_HIGH, HistorySort.SCORE_LOW)

    @property
    def descending(self) -> bool:
        return self in (HistorySort.NEWEST, HistorySort.SCORE_HIGH)


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryQuery:
    """What the history shows. Every filter left None keeps every decision.

    Attributes:
        since: Decisions at or after this time (aware).
        until: Decisions before this time (a shift is ``[start, end)``).
        stations: Only these stations, by name.
        verdicts: Only these verdicts (``NOT_INSPECTED`` alone: the parts the model never judged).
        score_min: Scores at or above this (a band's lower edge).
        score_max: Scores below this (the band's upper edge, excluded).
        review: Only decisions in this review state.
        model_hash: Only decisions judged by this model (SHA-256 hex).
        sort: The order of the rows.

    Raises:
        ValueError: A naive time, a band outside 0..1 or upside down, an empty list of choices.
    """

    since: datetime | None = None
    until: datetime | None = None
    stations: tuple[str, ...] | None = None
    verdicts: tuple[Verdict, ...] | None = None
    score_min: float | None = None
    score_max: float | None = None
    review: ReviewState | None = None
    model_hash: str | None = None
    sort: HistorySort = HistorySort.NEWEST

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
                raise ValueError(f"{name}: give a timezone-aware time")
        for name in ("score_min", "score_max"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} {value}: a score is between 0 and 1")
        if self.score_min is not None and self.score_max is not None and self.score_min > self.score_max:
            raise ValueError(f"score band {self.score_min}..{self.score_max} is upside down")
        if self.stations is not None and not self.stations:
            raise ValueError("stations: name at least one, or None for all")
        if self.verdicts is not None:
            if not self.verdicts:
                raise ValueError("verdicts: name at least one, or None for all")
            object.__setattr__(self, "verdicts", tuple(Verdict(v) for v in self.verdicts))
        if self.review is not None:
            object.__setattr__(self, "review", ReviewState(self.review))
        object.__setattr__(self, "sort", HistorySort(self.sort))


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryCursor:
    """Where a page ends: the row's sort key (time or score) and part id."""

    key: datetime | float
    part_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryRow:
    """One decision as the history lists it, with the gist of its reviews."""

    decision: Decision
    model_name: str | None
    image_sha256: str | None  # of the image file, as the chain records it (None before revision 0003)
    reviews: int  # how many reviews it has
    review_verdict: Verdict | None  # what the newest review says the part is
    review_outcome: ReviewOutcome | None

    @property
    def final_verdict(self) -> Verdict:
        """The newest review's verdict, else the model's."""
        return self.review_verdict or self.decision.verdict


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryPage:
    """Rows in the query's order, and the keys to the neighbouring pages.

    Attributes:
        rows: The page, in the query's order.
        first: The key of the first row (ask ``before=first`` for the previous page), or None.
        last: The key of the last row (ask ``after=last`` for the next page), or None.
        has_previous: Rows come before this page.
        has_next: Rows come after this page.
    """

    rows: tuple[HistoryRow, ...]
    first: HistoryCursor | None
    last: HistoryCursor | None
    has_previous: bool
    has_next: bool


def _cursor(decision: Decision, sort: HistorySort) -> HistoryCursor:
    key: datetime | float | None = decision.score if sort.by_score else decision.created_at
    assert key is not None  # score orders list inspected parts only
    return HistoryCursor(key=key, part_id=decision.part_id)


def _reviewed(outcome: ReviewOutcome | None, *, counting: bool) -> Any:
    """The condition "has a review" (``outcome`` None), or "its newest review has ``outcome``"."""
    r = aliased(ReviewRow)
    conditions: list[Any] = []
    if outcome is not None:
        newer = aliased(ReviewRow)
        later = select(literal(1)).select_from(newer).where(newer.part_id == r.part_id, newer.seq > r.seq)
        conditions = [r.outcome == outcome.value, ~exists(later)]
    if counting:
        return DecisionRow.part_id.in_(select(r.part_id).where(*conditions))
    return exists(select(literal(1)).select_from(r).where(r.part_id == DecisionRow.part_id, *conditions))


def _where(statement: Any, query: HistoryQuery, *, counting: bool = False) -> Any:
    """``statement`` filtered by ``query``.

    The review filters take two forms. A page walks the sort order's index and stops after a
    page of matches, so a correlated ``EXISTS`` per row is cheapest (about 100 rows read per
    match when 1 % of the parts are reviewed). A count reads every match: it starts from the
    reviews instead (an ``IN`` list the planner reads once), which costs the number of reviews,
    not the size of the log.
    """
    d = DecisionRow
    if query.since is not None:
        statement = statement.where(d.created_at >= query.since)
    if query.until is not None:
        statement = statement.where(d.created_at < query.until)
    if query.stations is not None:
        ids = select(Station.id).where(Station.name.in_(query.stations))
        statement = statement.where(d.station_id.in_(ids.scalar_subquery()))
    if query.verdicts is not None:
        statement = statement.where(d.verdict.in_([v.value for v in query.verdicts]))
    if query.score_min is not None:
        statement = statement.where(d.score >= query.score_min)
    if query.score_max is not None:
        statement = statement.where(d.score < query.score_max)
    if query.sort.by_score:
        statement = statement.where(d.score.is_not(None))
    if query.model_hash is not None:
        model = select(ModelVersion.id).where(ModelVersion.hash == query.model_hash)
        statement = statement.where(d.model_version_id == model.scalar_subquery())
    if query.review is ReviewState.UNREVIEWED:
        statement = statement.where(~exists(select(literal(1)).where(ReviewRow.part_id == d.part_id)))
    elif query.review is not None:
        outcome = None if query.review is ReviewState.REVIEWED else ReviewOutcome(query.review.value)
        statement = statement.where(_reviewed(outcome, counting=counting))
    return statement


def _keyset(statement: Any, sort: HistorySort, cursor: HistoryCursor, forward: bool) -> Any:
    """Rows strictly after (``forward``) or before ``cursor`` in ``sort``'s order."""
    d = DecisionRow
    column = d.score if sort.by_score else d.created_at
    key = literal(cursor.key, column.type if sort.by_score else UTCDateTime())
    # Descending order read forward goes down the index; either reversal flips it.
    downwards = sort.descending == forward
    pair = tuple_(column, d.part_id)
    bound = tuple_(key, literal(cursor.part_id, d.part_id.type))
    return statement.where(pair < bound if downwards else pair > bound)


def page(
    context: LogContext,
    query: HistoryQuery,
    *,
    after: HistoryCursor | None = None,
    before: HistoryCursor | None = None,
    from_end: bool = False,
    limit: int = 50,
) -> HistoryPage:
    """One page of the history (see ``VisualLog.history``).

    Raises:
        ValueError: More than one of ``after``, ``before``, ``from_end``; a limit outside 1..1000.
        StorageError: The database refused.
    """
    if sum((after is not None, before is not None, from_end)) > 1:
        raise ValueError("ask for the page after a row, before a row, or the last page: one of them")
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit {limit}: a page holds 1 to {MAX_PAGE} rows")
    sort = query.sort
    forward = before is None and not from_end
    column = DecisionRow.score if sort.by_score else DecisionRow.created_at
    downwards = sort.descending == forward
    order = (column.desc(), DecisionRow.part_id.desc()) if downwards else (column, DecisionRow.part_id)
    statement = _where(_DECISIONS.add_columns(ModelVersion.name, DecisionRow.image_sha256), query)
    cursor = after if after is not None else before
    if cursor is not None:
        statement = _keyset(statement, sort, cursor, forward)
    statement = statement.order_by(*order).limit(limit + 1)
    with environment_errors(context.where), context.sessions() as session:
        found = list(session.execute(statement))
        more = len(found) > limit
        found = found[:limit]
        if not forward:
            found.reverse()
        ids = [row[0] for row in found]
        reviews = _reviews_of(session, ids) if ids else {}
    rows = tuple(_history_row(_to_decision(row), row[-2], row[-1], reviews) for row in found)
    first = _cursor(rows[0].decision, sort) if rows else None
    last = _cursor(rows[-1].decision, sort) if rows else None
    if forward:
        has_previous, has_next = after is not None, more
    else:
        has_previous, has_next = more, not from_end
    return HistoryPage(rows=rows, first=first, last=last, has_previous=has_previous, has_next=has_next)


def _history_row(
    decision: Decision,
    model_name: str | None,
    image_sha256: str | None,
    reviews: dict[str, tuple[int, Verdict, ReviewOutcome]],
) -> HistoryRow:
    number, verdict, outcome = reviews.get(decision.part_id, (0, None, None))
    return HistoryRow(
        decision=decision,
        model_name=model_name,
        image_sha256=image_sha256,
        reviews=number,
        review_verdict=verdict,
        review_outcome=outcome,
    )


def _reviews_of(session: Any, part_ids: Sequence[str]) -> dict[str, tuple[int, Verdict, ReviewOutcome]]:
    """Per part: the number of its reviews, and the newest one's verdict and outcome."""
    result: dict[str, tuple[int, Verdict, ReviewOutcome]] = {}
    query = (
        select(ReviewRow.part_id, ReviewRow.verdict, ReviewRow.outcome)
        .where(ReviewRow.part_id.in_(part_ids))
        .order_by(ReviewRow.seq)
    )
    for part_id, verdict, outcome in session.execute(query):
        number = result[part_id][0] + 1 if part_id in result else 1
        result[part_id] = (number, Verdict(verdict), ReviewOutcome(outcome))
    return result


def count(context: LogContext, query: HistoryQuery) -> int:
    """How many decisions match ``query`` (an index scan: tens of milliseconds per 100,000 rows)."""
    statement = _where(select(func.count()).select_from(DecisionRow), query, counting=True)
    with environment_errors(context.where), context.sessions() as session:
        return int(session.scalar(statement) or 0)
