"""Anchors: a chain head written down outside the log, and the check of the log against it.

A hash chain proves nothing against someone who can rewrite it: drop the newest rows and set the
head back, or edit a row and recompute every later hash, and the chain verifies again. What they
cannot change is a head that was already written down elsewhere: every shift report records the
head at the shift's end (``chain_head_seq``, ``chain_head_hash``), every backup writes the heads
of its copy next to it (``*.heads``), and ``verify-log --against`` checks that the record at the
anchor's position still exists with the anchor's hash.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, select

from core.storage.context import LogContext
from core.storage.errors import environment_errors
from core.storage.records import ChainHead
from core.storage.schema import DecisionRow, PrunedRangeRow, ReviewRow, Station, ThresholdChangeRow

_GONE = "gone"
_HEX = frozenset("0123456789abcdef")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a report's safe_cell neutralises


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """A head written down earlier: the station (None: the one being checked) and its link."""

    station: str | None
    head: ChainHead


def read_anchors(value: str) -> list[Anchor]:
    """Anchors from a shift summary CSV, a ``*.heads`` file, or a head typed as ``[STATION:]SEQ:HASH``.

    Raises:
        ValueError: Not a file with heads, nor a head (the message says which form is expected).
    """
    path = Path(value)
    if path.is_file():
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix.lower() == ".csv":
            return [_from_summary(text, path)]
        anchors = []
        for line in text.splitlines():
            if line.strip():
                station, _, head = line.rpartition("\t")
                anchors.append(Anchor(station=station or None, head=_head(head, path.name)))
        if not anchors:
            raise ValueError(f"{path} holds no chain head")
        return anchors
    parts = value.rsplit(":", 2)
    station = parts[0] if len(parts) == 3 else ""
    return [Anchor(station=station or None, head=_head(":".join(parts[-2:]), value))]


def _from_summary(text: str, path: Path) -> Anchor:
    items = {row[0]: row[1] for row in csv.reader(io.StringIO(text)) if len(row) >= 2}
    try:
        station, seq, head_hash = items["station"], items["chain_head_seq"], items["chain_head_hash"]
    except KeyError as missing:
        raise ValueError(f"{path} is not a shift summary with a chain head (no {missing})") from None
    if station.startswith("'") and station[1:].startswith(_FORMULA_STARTS):
        station = station[1:]
    return Anchor(station=station, head=_head(f"{seq}:{head_hash}", path.name))


def _head(text: str, where: str) -> ChainHead:
    seq, _, head_hash = text.strip().partition(":")
    head_hash = head_hash.lower()
    if not seq.isdigit() or len(head_hash) != 64 or not set(head_hash) <= _HEX:
        raise ValueError(f"{where}: a chain head is SEQ:HASH (e.g. 1234:9f86d0...), not {text.strip()!r}")
    return ChainHead(seq=int(seq), hash=head_hash)


def check_anchor(context: LogContext, station: str, head: ChainHead) -> str | None:
    """Why the station's chain does not contain ``head``, or None when it does.

    The record at ``head.seq`` must still exist with that hash (or be the last link of a range
    that retention removed, whose checkpoint keeps the hash). A record inside a removed range
    cannot be compared; the chain then holds the anchor as far as anyone can tell.

    Raises:
        KeyError: No station of that name.
    """
    with environment_errors(context.where), context.engine.connect() as connection:
        found = connection.execute(
            select(Station.id, Station.head_seq).where(Station.name == station)
        ).first()
        if found is None:
            raise KeyError(f"no station {station!r} in the visual log")
        station_id, head_seq = found
        if head.seq == 0:
            return None
        if head_seq < head.seq:
            return (
                f"rows were removed or rewritten after the anchor {head}: the chain ends at record "
                f"{head_seq}, before the anchor's record"
            )
        stored = _hash_at(connection, station_id, head.seq)
    if stored is None or stored == head.hash:
        return None
    now = "is gone" if stored == _GONE else f"now has hash {stored}"
    return f"rows were removed or rewritten after the anchor {head}: record {head.seq} {now}"


def _hash_at(connection: Connection, station_id: int, seq: int) -> str | None:
    """The hash of the link at ``seq``: a record's, a range's checkpoint, or None inside a range."""
    for table in (DecisionRow, ThresholdChangeRow, ReviewRow):
        found = connection.scalar(
            select(table.row_hash).where(table.station_id == station_id, table.seq == seq)
        )
        if found is not None:
            return str(found)
    p = PrunedRangeRow
    pruned = connection.execute(
        select(p.last_seq, p.last_hash)
        .where(p.station_id == station_id, p.last_seq >= seq, p.first_seq <= seq)
        .limit(1)
    ).first()
    if pruned is None:
        return _GONE  # neither a record nor removed by retention
    return str(pruned.last_hash) if pruned.last_seq == seq else None
