"""A station's hash chain as the log moves it: appending links under the head, reading the head.

Decisions, threshold changes and reviews are appended here (see ``core.storage.chain`` for the
hashes and the verifier): each append updates the chain head on the station's row and inserts
the record in one transaction, and the head update only succeeds when nobody appended in between,
so two writers of one station (the station and a supervisor's review) never fork the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from core.storage.chain import verify_station
from core.storage.context import LogContext
from core.storage.errors import StorageError, environment_errors
from core.storage.records import ChainHead, ChainVerification
from core.storage.schema import GENESIS_HASH, DecisionRow, ReviewRow, Station, ThresholdChangeRow

_APPEND_ATTEMPTS = 20  # another writer of the same station moved the head: reload and retry

ChainedTable = type[DecisionRow | ThresholdChangeRow | ReviewRow]
Link = Callable[[int, str], str]  # (seq, previous hash) -> this row's hash


class _StaleHead(Exception):
    """Another writer appended to the chain since the head was read; roll back and retry."""


def append(
    context: LogContext,
    station_id: int,
    table: ChainedTable,
    values: dict[str, Any],
    link: Link,
    *,
    then: Callable[[Connection], None] | None = None,
) -> tuple[int, str]:
    """Insert ``values`` as the next link of a station's chain; returns its (seq, hash)."""
    return append_many(context, station_id, table, [(values, link)], then=then)


def append_many(
    context: LogContext,
    station_id: int,
    table: ChainedTable,
    rows: Sequence[tuple[dict[str, Any], Link]],
    *,
    then: Callable[[Connection], None] | None = None,
) -> tuple[int, str]:
    """Insert ``rows`` as the next links of a station's chain, in one transaction.

    Returns the (seq, hash) of the last. The head moves only if it is still where this log saw
    it: otherwise another writer appended first, and the head is read again. The head in memory
    advances only after the commit, so a failed commit (disk full) leaves it pointing at the last
    committed link. ``then`` runs inside the same transaction, after the insert.

    Raises:
        StorageError: Other writers kept moving the head; the database errors themselves pass
            through (the caller wraps them).
    """
    heads = context.heads
    for _ in range(_APPEND_ATTEMPTS):
        head = heads.get(station_id) or _read_head(context, station_id)
        seq, row_hash = head.seq, head.hash
        linked = []
        for values, link in rows:
            seq += 1
            row_hash = link(seq, row_hash)
            linked.append({**values, "seq": seq, "row_hash": row_hash})
        try:
            with context.writer.begin() as connection:
                moved = connection.execute(
                    update(Station)
                    .where(Station.id == station_id, Station.head_seq == head.seq)
                    .values(head_seq=seq, head_hash=row_hash)
                ).rowcount
                if moved != 1:
                    raise _StaleHead
                if len(linked) == 1:
                    connection.execute(insert(table).values(**linked[0]))
                else:
                    connection.execute(insert(table), linked)
                if then is not None:
                    then(connection)
        except _StaleHead:
            heads.pop(station_id, None)
            continue
        except BaseException:
            heads.pop(station_id, None)  # the commit may or may not have happened
            raise
        heads[station_id] = ChainHead(seq=seq, hash=row_hash)
        return seq, row_hash
    raise StorageError("locked", context.where, "other writers kept appending to this station's chain")


def _read_head(context: LogContext, station_id: int) -> ChainHead:
    with context.engine.connect() as connection:
        seq, head_hash = connection.execute(
            select(Station.head_seq, Station.head_hash).where(Station.id == station_id)
        ).one()
    return ChainHead(seq=seq, hash=head_hash)


def chain_head(context: LogContext) -> ChainHead:
    """The newest link of the station's chain, as committed (see ``VisualLog.chain_head``)."""
    with environment_errors(context.where), context.sessions() as session:
        found = session.execute(
            select(Station.head_seq, Station.head_hash).where(Station.name == context.station)
        ).first()
    return ChainHead(seq=0, hash=GENESIS_HASH) if found is None else ChainHead(seq=found[0], hash=found[1])


def chain_head_before(context: LogContext, until: datetime) -> ChainHead:
    """The link of the newest record made before ``until`` (see ``VisualLog.chain_head_before``)."""
    best = ChainHead(seq=0, hash=GENESIS_HASH)
    with environment_errors(context.where), context.sessions() as session:
        station_id = context.find_station_id(session)
        if station_id is None:
            return best
        for table in (DecisionRow, ThresholdChangeRow, ReviewRow):
            found = session.execute(
                select(table.seq, table.row_hash)
                .where(table.station_id == station_id, table.created_at < until)
                .order_by(table.created_at.desc(), table.seq.desc())
                .limit(1)
            ).first()
            if found is not None and found[0] > best.seq:
                best = ChainHead(seq=found[0], hash=found[1])
    return best


def verify(context: LogContext, station: str | None, until_seq: int | None) -> ChainVerification:
    """Walk a station's chain, the context's by default (see ``VisualLog.verify``).

    Raises:
        KeyError: No station of that name.
    """
    name = station or context.station
    with environment_errors(context.where), context.engine.connect() as connection:
        station_id = connection.scalar(select(Station.id).where(Station.name == name))
        if station_id is None:
            if station is None:  # this station has recorded nothing yet: an empty chain is whole
                head = ChainHead(seq=0, hash=GENESIS_HASH)
                return ChainVerification(station=name, ok=True, records=0, pruned=0, head=head)
            raise KeyError(f"no station {name!r} in the visual log")
        return verify_station(connection, station_id, until_seq=until_seq)
