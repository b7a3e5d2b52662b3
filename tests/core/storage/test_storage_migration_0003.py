"""Revision 0003 on a log written at 0002: old rows keep their hash form and old ranges still verify."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from alembic.command import upgrade as alembic_upgrade
from alembic.config import Config
from sqlalchemy import text
from storage_helpers import MODEL_HASH, make_inspection, make_part

from core.storage import VisualLog, make_engine
from core.storage.chain import GENESIS_HASH, HASH_VERSION, decision_hash
from core.storage.migrate import MIGRATIONS

# Microseconds not 0: the sqlite3 driver writes times without them otherwise, unlike the log.
_AT = [datetime(2025, 3, 14, 9, 0, second, 123456, tzinfo=UTC) for second in range(3)]


def _log_at_0002(url: str) -> list[str]:
    """A station with three good decisions chained in the 0002 form; retention removed the first."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = make_engine(url)
    part_ids = [f"01JP00000000000000000000{i:02d}" for i in range(3)]
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            alembic_upgrade(config, "0002")
            sqlite = connection.dialect.name == "sqlite"

            def at(value: datetime) -> object:
                return value.replace(tzinfo=None) if sqlite else value

            connection.execute(text("INSERT INTO stations (id, name) VALUES (1, 'line-1')"))
            previous = GENESIS_HASH
            hashes = []
            for seq, (part_id, created_at) in enumerate(zip(part_ids, _AT, strict=True), start=1):
                previous = decision_hash(
                    previous,
                    station="line-1",
                    seq=seq,
                    part_id=part_id,
                    created_at=created_at,
                    source_ref="cam",
                    content_hash=None,
                    verdict="good",
                    score=0.1,
                    threshold=0.5,
                    reason=None,
                    latency_ms=3.5,
                    model_hash=None,
                    image_path=None,
                    heatmap_path=None,
                    media_bytes=0,
                )
                hashes.append(previous)
                connection.execute(
                    text(
                        "INSERT INTO decisions (part_id, station_id, created_at, source_ref, verdict, score,"
                        " threshold, latency_ms, seq, row_hash, media_bytes)"
                        " VALUES (:p, 1, :at, 'cam', 'good', 0.1, 0.5, 3.5, :s, :h, 0)"
                    ),
                    {"p": part_id, "at": at(created_at), "s": seq, "h": previous},
                )
            connection.execute(
                text("UPDATE stations SET head_seq = 3, head_hash = :h WHERE id = 1"), {"h": previous}
            )
            # Retention as 0002 did it: a run, a range without a newest time, then the delete.
            cutoff = at(datetime(2025, 3, 14, 9, 0, 1, 5, tzinfo=UTC))
            connection.execute(
                text(
                    'INSERT INTO retention_runs (id, station_id, created_at, "user", reason, good_before)'
                    " VALUES (1, 1, :at, 'retention', 'good after 30 days', :c)"
                ),
                {"at": at(datetime(2025, 4, 20, 0, 0, 0, 5, tzinfo=UTC)), "c": cutoff},
            )
            connection.execute(
                text(
                    "INSERT INTO pruned_ranges (station_id, first_seq, last_seq, last_hash, run_id)"
                    " VALUES (1, 1, 1, :h, 1)"
                ),
                {"h": hashes[0]},
            )
            connection.execute(text("DELETE FROM decisions WHERE part_id = :p"), {"p": part_ids[0]})
    finally:
        engine.dispose()
    return part_ids


def test_a_0002_log_upgrades_and_its_old_links_and_ranges_still_verify(
    fresh_db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    part_ids = _log_at_0002(fresh_db_url)
    log = open_log(fresh_db_url, station="line-1")
    with log.engine.connect() as connection:
        versions = connection.execute(text("SELECT part_id, hash_version FROM decisions ORDER BY seq")).all()
    assert [tuple(v) for v in versions] == [(part_ids[1], 1), (part_ids[2], 1)]
    result = log.verify()
    assert result.ok and (result.records, result.pruned) == (2, 1)

    new = log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    with log.engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT hash_version FROM decisions WHERE part_id = :p"), {"p": new.part_id}
            ).scalar_one()
            == HASH_VERSION  # 2 when revision 0003 came; 3 since the second opinion is chained too
        )
    assert log.verify().ok and log.chain_head().seq == 4
    media = log.verify_media()
    assert media.ok and media.files == 2 and media.unhashed == 0
    # The stricter delete trigger is in place: the old run's range does not cover the others.
    with pytest.raises(Exception, match="append-only"), log.engine.begin() as connection:
        connection.execute(text("DELETE FROM decisions WHERE part_id = :p"), {"p": part_ids[1]})
