"""The hash chain over a station's records, and its verification.

Every decision, threshold change and review of a station gets the next sequence number of that
station and a hash: ``sha256(previous hash + "\\n" + canonical JSON of the record)``. The first
record chains from ``GENESIS_HASH``; the station's row keeps the newest ``(seq, hash)``, the head.
Editing any hashed field, deleting a record, or deleting records at the end breaks the chain at a
point the verifier reports.

Retention removes old decisions through the one path the database allows: it first records each
run of consecutive removed links as a *pruned range* with the hash of its last link (a
checkpoint); the verifier skips the range and resumes from that hash, so the records after it
still prove themselves.

The canonical form is version 1 and must never change for existing rows: times as UTC ISO text
with microseconds, floats as Python's shortest repr, the station's name and the model's hash
rather than row ids (ids are not the same after a restore into another database).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, String, func, literal, select, type_coerce

from core.storage.records import ChainHead, ChainVerification
from core.storage.schema import (
    GENESIS_HASH,
    MIN_AGE_DAYS,
    DecisionRow,
    ModelVersion,
    PrunedRangeRow,
    RetentionRunRow,
    ReviewRow,
    Station,
    ThresholdChangeRow,
    UserRow,
)

__all__ = [
    "GENESIS_HASH",
    "HASH_VERSION",
    "decision_hash",
    "review_hash",
    "threshold_change_hash",
    "verify_station",
]

_STREAM = {"yield_per": 5000}


# The first element of a decision's payload, by hash version: a row cannot pass as another version.
_DECISION_TAGS = {1: "decision", 2: "decision/2", 3: "decision/3"}
HASH_VERSION = 3  # the form new decisions are written in


def _time(value: datetime | str) -> str:
    if isinstance(value, str):  # already canonical (see _canonical_time_sql)
        return value
    # Values read back from SQLite are naive UTC (see UTCDateTime).
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


_quote = json.encoder.encode_basestring  # JSON's own string escaping (C), as json.dumps uses it


def _canonical(payload: list[Any]) -> str:
    """``json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``, faster.

    The payloads hold only strings, ints, finite floats and None; a test checks this against
    ``json.dumps``. Verifying a million records is mostly this function.
    """
    parts = []
    for value in payload:
        if value is None:
            parts.append("null")
        elif isinstance(value, str):
            parts.append(_quote(value))
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{value} cannot be hashed: the chain stores finite numbers only")
            parts.append(repr(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            parts.append(str(value))
        else:
            raise TypeError(f"cannot hash a {type(value).__name__} in the chain")
    return "[" + ",".join(parts) + "]"


def _link(previous: str, payload: list[Any]) -> str:
    return hashlib.sha256(f"{previous}\n{_canonical(payload)}".encode()).hexdigest()


def decision_hash(
    previous: str,
    *,
    station: str,
    seq: int,
    part_id: str,
    created_at: datetime,
    source_ref: str,
    content_hash: str | None,
    verdict: str,
    score: float | None,
    threshold: float | None,
    reason: str | None,
    latency_ms: float | None,
    model_hash: str | None,
    image_path: str | None,
    heatmap_path: str | None,
    media_bytes: int,
    hash_version: int = 1,
    image_sha256: str | None = None,
    heatmap_sha256: str | None = None,
    anomaly_score: float | None = None,
    anomaly_threshold: float | None = None,
    fired: str | None = None,
) -> str:
    """The chain hash of a decision record.

    Version 1 (rows written before revision 0003) covers the row; version 2 also covers the
    SHA-256 of the image and heatmap files, so a replaced or deleted file is found; version 3 also
    the second opinion's columns (anomaly score, its threshold, which check fired), so a missed
    defect cannot be made to look as if the anomaly score never saw it.
    """
    payload = [
        _DECISION_TAGS[hash_version],
        station,
        seq,
        part_id,
        _time(created_at),
        source_ref,
        content_hash,
        verdict,
        _number(score),
        _number(threshold),
        reason,
        _number(latency_ms),
        model_hash,
        image_path,
        heatmap_path,
        int(media_bytes),
    ]
    if hash_version >= 2:
        payload += [image_sha256, heatmap_sha256]
    if hash_version >= 3:
        payload += [_number(anomaly_score), _number(anomaly_threshold), fired]
    return _link(previous, payload)


def threshold_change_hash(
    previous: str,
    *,
    station: str,
    seq: int,
    created_at: datetime,
    user: str,
    old: float | None,
    new: float,
    reason: str,
    model_hash: str | None,
) -> str:
    """The chain hash of a threshold change record."""
    payload = [
        "threshold_change",
        station,
        seq,
        _time(created_at),
        user,
        _number(old),
        _number(new),
        reason,
        model_hash,
    ]
    return _link(previous, payload)


def review_hash(
    previous: str,
    *,
    station: str,
    seq: int,
    created_at: datetime,
    part_id: str,
    user: str,
    verdict: str,
    outcome: str,
    comment: str | None,
) -> str:
    """The chain hash of a review record."""
    payload = ["review", station, seq, _time(created_at), part_id, user, verdict, outcome, comment]
    return _link(previous, payload)


# ---------------------------------------------------------------------------- verification

_DECISION, _THRESHOLD, _REVIEW, _PRUNED = "decision", "threshold change", "review", "pruned"


def _canonical_time_sql(dialect: str) -> Callable[[Any], Any]:
    """The canonical time text, made by the database (parsing a million datetimes in Python
    would be most of the verification's work); other backends get datetimes, formatted here."""
    if dialect == "sqlite":  # stored as "YYYY-MM-DD HH:MM:SS.ffffff", UTC
        return lambda column: func.replace(type_coerce(column, String), " ", "T").concat("Z")
    if dialect == "postgresql":
        return lambda column: func.to_char(
            func.timezone("UTC", column), literal('YYYY-MM-DD"T"HH24:MI:SS.US"Z"', String)
        )
    return lambda column: column


def _stream(
    results: ExitStack, connection: Connection, kind: str, query: Any
) -> Iterator[tuple[int, str, Any]]:
    # Server-side cursors on PostgreSQL: closed by the stack even when the walk stops early.
    result = results.enter_context(connection.execution_options(**_STREAM).execute(query))
    return ((row[0], kind, tuple(row)) for row in result)


def verify_station(
    connection: Connection, station_id: int, *, until_seq: int | None = None
) -> ChainVerification:
    """Walk one station's chain from its first record and report the first broken link.

    Args:
        connection: An open connection; the walk reads in one transaction, so concurrent
            appends after it started are not seen (and do not break it).
        station_id: The station's row id.
        until_seq: Stop after this link (a shift report proves the chain up to its own head);
            None walks to the head recorded on the station's row and checks it.

    Returns:
        What was checked and, when the chain is broken, where and why.
    """
    with ExitStack() as results:
        return _verify(results, connection, station_id, until_seq)


def _verify(
    results: ExitStack, connection: Connection, station_id: int, until_seq: int | None
) -> ChainVerification:
    station = connection.execute(
        select(Station.name, Station.head_seq, Station.head_hash).where(Station.id == station_id)
    ).one()
    name, head = station.name, ChainHead(seq=int(station.head_seq), hash=station.head_hash)
    models: dict[int | None, str | None] = dict(
        connection.execute(select(ModelVersion.id, ModelVersion.hash)).all()
    )
    models[None] = None
    users = dict(connection.execute(select(UserRow.id, UserRow.name)).all())

    d, t, r, p, rr = DecisionRow, ThresholdChangeRow, ReviewRow, PrunedRangeRow, RetentionRunRow
    when = _canonical_time_sql(connection.dialect.name)

    streams = [
        _stream(
            results,
            connection,
            _DECISION,
            select(
                d.seq,
                d.row_hash,
                d.part_id,
                when(d.created_at),
                d.source_ref,
                d.content_hash,
                d.verdict,
                d.score,
                d.threshold,
                d.reason,
                d.latency_ms,
                d.model_version_id,
                d.image_path,
                d.heatmap_path,
                d.media_bytes,
                d.hash_version,
                d.image_sha256,
                d.heatmap_sha256,
                d.anomaly_score,
                d.anomaly_threshold,
                d.fired,
            )
            .where(d.station_id == station_id)
            .order_by(d.seq),
        ),
        _stream(
            results,
            connection,
            _THRESHOLD,
            select(
                t.seq,
                t.row_hash,
                when(t.created_at),
                t.user_id,
                t.old_threshold,
                t.new_threshold,
                t.reason,
                t.model_version_id,
            )
            .where(t.station_id == station_id)
            .order_by(t.seq),
        ),
        _stream(
            results,
            connection,
            _REVIEW,
            select(
                r.seq, r.row_hash, when(r.created_at), r.part_id, r.user_id, r.verdict, r.outcome, r.comment
            )
            .where(r.station_id == station_id)
            .order_by(r.seq),
        ),
        _stream(
            results,
            connection,
            _PRUNED,
            select(
                p.first_seq,
                p.last_seq,
                p.last_hash,
                when(p.newest_at),
                p.run_id,
                rr.station_id,
                when(rr.created_at),
                when(rr.good_before),
                when(rr.bad_before),
                when(rr.not_inspected_before),
            )
            .join(rr, rr.id == p.run_id, isouter=True)
            .where(p.station_id == station_id)
            .order_by(p.first_seq),
        ),
    ]

    expected, previous, records, pruned = 1, GENESIS_HASH, 0, 0
    previous_at: Any = None  # the time of the newest record before the current one, when known
    newest_version = 1  # decisions never go back to an older hash form
    verified_at = datetime.now(UTC)

    def broken(at: int, problem: str) -> ChainVerification:
        return ChainVerification(
            station=name, ok=False, records=records, pruned=pruned, head=head, broken_at=at, problem=problem
        )

    for seq, kind, row in heapq.merge(*streams, key=lambda item: item[0]):
        if until_seq is not None and seq > until_seq:
            break
        if seq < expected:
            return broken(seq, f"two records claim position {seq} of the chain (the second is a {kind})")
        if seq > expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected} to {seq - 1}"
            return broken(
                expected,
                f"record {missing} of the chain is missing: deleted without going through retention",
            )
        if kind == _PRUNED:
            _, last_seq, last_hash, newest_at = row[:4]
            if problem := _unjustified(row, station_id, previous_at, verified_at):
                return broken(seq, problem)
            previous, pruned, expected = last_hash, pruned + last_seq - seq + 1, last_seq + 1
            previous_at = newest_at if newest_at is not None else previous_at
            continue
        stored = row[1]
        if kind == _DECISION:
            version = row[15]
            if version not in _DECISION_TAGS or version < newest_version:
                return broken(
                    seq,
                    f"{_describe(kind, row)} (record {seq}) claims hash version {version} after records "
                    f"of version {newest_version}: its form was changed",
                )
            newest_version = version
        if _recompute(kind, row, previous, name, models, users) != stored:
            return broken(
                seq,
                f"{_describe(kind, row)} (record {seq}) does not match the chain: "
                "it was edited, or its hash was",
            )
        previous, expected, records = stored, expected + 1, records + 1
        previous_at = row[3] if kind == _DECISION else row[2]

    last = expected - 1
    if until_seq is not None:
        if last != until_seq:
            return broken(last + 1, f"records {last + 1} to {until_seq} of the chain are missing")
        return ChainVerification(
            station=name, ok=True, records=records, pruned=pruned, head=ChainHead(seq=last, hash=previous)
        )
    if last < head.seq:
        return broken(
            last + 1,
            f"records {last + 1} to {head.seq} at the end of the chain are missing (deleted)",
        )
    if last > head.seq or previous != head.hash:
        return broken(
            head.seq, f"the recorded head {head} does not match the chain's last record {last}:{previous}"
        )
    return ChainVerification(station=name, ok=True, records=records, pruned=pruned, head=head)


# Clocks of two writers (the station, a supervisor's review) may differ by this much.
_CLOCK_SKEW = timedelta(minutes=5)


def _instant(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # canonical text, or whatever someone wrote into the column
        value = datetime.fromisoformat(value.removesuffix("Z"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _unjustified(
    row: tuple[Any, ...], station_id: int, previous_at: Any, verified_at: datetime
) -> str | None:
    """Why a pruned range cannot have been made by its retention run, or None when it can.

    The decisions of a range were appended after the record before it, and were older than
    the run's cut-off when the run made the range; the run's cut-offs are older than the
    minimum ages, and the run happened before now. A range forged to cover a deleted decision
    has to lie about one of these.
    """
    first, last, _, newest_text, run_id, run_station, run_text, *cutoff_texts = row
    span = f"records {first} to {last}" if last != first else f"record {first}"
    claim = f"{span} of the chain are recorded as removed by retention run {run_id}, but"
    if run_station != station_id:
        return f"{claim} that run is not a retention run of this station"
    try:
        run_at = _instant(run_text)
        cutoffs = {
            verdict: _instant(text)
            for verdict, text in zip(("good", "bad", "not_inspected"), cutoff_texts, strict=True)
        }
        before = _instant(previous_at)
        newest = _instant(newest_text)
    except ValueError as exc:
        return f"{claim} the times of the range or the run cannot be read ({exc})"
    if run_at is None:
        return f"{claim} that run has no time"
    given = [c for c in cutoffs.values() if c is not None]
    if not given:
        return f"{claim} that run has no cut-off: it removed nothing"
    latest = max(given)
    if newest is None:  # a range made before revision 0003 records only its run
        if before is not None and before >= latest + _CLOCK_SKEW:
            return f"{claim} the record before them is younger than every cut-off of that run"
        return None
    if run_at > verified_at + _CLOCK_SKEW:
        return f"{claim} that run is dated in the future ({_time(run_at)})"
    for verdict, cutoff in cutoffs.items():
        if cutoff is not None and cutoff > run_at - timedelta(days=MIN_AGE_DAYS[verdict]):
            return (
                f"{claim} that run's cut-off for {verdict} parts ({_time(cutoff)}) is younger than "
                f"the minimum age of {MIN_AGE_DAYS[verdict]} days"
            )
    if newest >= latest or newest > run_at:
        return f"{claim} their newest decision ({_time(newest)}) was not older than the run's cut-offs"
    if before is not None and before > newest + _CLOCK_SKEW:
        return (
            f"{claim} the record before them ({_time(before)}) is younger than their newest decision "
            f"({_time(newest)}): they were younger than the run's cut-offs"
        )
    return None


def _recompute(
    kind: str,
    row: tuple[Any, ...],
    previous: str,
    station: str,
    models: dict[int | None, str | None],
    users: dict[int, str],
) -> str:
    # The same payloads as decision_hash and friends, built from the positional rows above.
    if kind == _DECISION:
        (seq, _, part_id, at, source, content, verdict, score, threshold, reason, latency, model,
         image, heatmap, media, version, image_sha, heatmap_sha, anomaly, anomaly_limit, fired) = row  # fmt: skip
        payload = [
            _DECISION_TAGS[version], station, seq, part_id, _time(at), source, content, verdict,
            _number(score), _number(threshold), reason, _number(latency),
            models.get(model, f"#{model}"), image, heatmap, int(media),
        ]  # fmt: skip
        if version >= 2:
            payload += [image_sha, heatmap_sha]
        if version >= 3:
            payload += [_number(anomaly), _number(anomaly_limit), fired]
    elif kind == _THRESHOLD:
        seq, _, at, user, old, new, reason, model = row
        payload = [
            "threshold_change", station, seq, _time(at), users.get(user, f"#{user}"), _number(old),
            _number(new), reason, models.get(model, f"#{model}"),
        ]  # fmt: skip
    else:
        seq, _, at, part_id, user, verdict, outcome, comment = row
        payload = [
            "review",
            station,
            seq,
            _time(at),
            part_id,
            users.get(user, f"#{user}"),
            verdict,
            outcome,
            comment,
        ]
    return _link(previous, payload)


def _describe(kind: str, row: tuple[Any, ...]) -> str:
    if kind == _DECISION:
        return f"the decision about part {row[2]}"
    if kind == _REVIEW:
        return f"the review of part {row[3]}"
    return f"the threshold change of {_time(row[2])}"
