"""The second opinion in the visual log (revision 0007) and in the shift CSV (issue 20)."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, text
from storage_helpers import MODEL_HASH, make_inspection, make_part, tamper

from core.common.types import Inspection, Verdict
from core.storage import VisualLog


def _with_anomaly(score: float, anomaly: float, seed: int = 1) -> Inspection:
    base = make_inspection(score=score, seed=seed)
    amap = np.full(base.heatmap.shape, 200, np.uint8)
    return replace(base, anomaly_score=anomaly, anomaly_threshold=10.0, anomaly_heatmap=amap)


def test_each_row_records_both_opinions_and_which_fired(log: VisualLog) -> None:
    cases = {
        "good": _with_anomaly(0.1, 3.0),
        "classifier": _with_anomaly(0.9, 3.0),
        "anomaly": _with_anomaly(0.1, 12.5),
        "both": _with_anomaly(0.9, 12.5),
        "alone": make_inspection(score=0.9),  # a bundle without the second opinion
    }
    written = {
        name: log.record(make_part(source_ref=name), inspection, model_hash=MODEL_HASH)
        for name, inspection in cases.items()
    }
    for decision in written.values():
        assert log.get(decision.part_id) == decision  # read back as written
    get = {name: log.get(d.part_id) for name, d in written.items()}
    assert get["good"].verdict is Verdict.GOOD and get["good"].fired is None  # type: ignore[union-attr]
    assert get["good"].anomaly_score == 3.0 and get["good"].anomaly_threshold == 10.0  # type: ignore[union-attr]
    assert get["anomaly"].verdict is Verdict.BAD and get["anomaly"].fired == "anomaly"  # type: ignore[union-attr]
    assert get["classifier"].fired == "classifier" and get["both"].fired == "both"  # type: ignore[union-attr]
    # Without a second opinion the row is the classifier's alone, as before revision 0007.
    assert get["alone"].anomaly_score is None and get["alone"].fired is None  # type: ignore[union-attr]
    assert get["alone"].verdict is Verdict.BAD  # type: ignore[union-attr]
    # The heatmap kept is the map of the check that fired: the anomaly map when only it did.
    media = log.media_root
    kept = {name: (media / d.heatmap_path).read_bytes() for name, d in written.items()}  # type: ignore[operator]
    assert kept["anomaly"] != kept["classifier"]
    assert log.verify().ok  # the chain (which covers the combined verdict) holds


@pytest.mark.parametrize(
    ("column", "forged"),
    [("anomaly_score", 2.0), ("anomaly_threshold", 20.0), ("fired", None)],
)
def test_the_second_opinion_is_a_link_of_the_chain(log: VisualLog, column: str, forged: object) -> None:
    # Someone with SQL access makes an anomaly catch look as if the anomaly score never saw the
    # part: each of the three columns is covered by the decision's hash (hash version 3).
    caught = log.record(make_part(), _with_anomaly(0.1, 12.5), model_hash=MODEL_HASH)
    log.record(make_part(), _with_anomaly(0.1, 3.0), model_hash=MODEL_HASH)
    assert log.verify().ok
    with log.engine.connect() as connection:
        seq, version = connection.execute(
            text("SELECT seq, hash_version FROM decisions WHERE part_id = :p"), {"p": caught.part_id}
        ).one()
    assert version == 3
    tamper(
        log, "decisions", f"UPDATE decisions SET {column} = :v WHERE part_id = :p", v=forged, p=caught.part_id
    )
    result = log.verify()
    assert not result.ok and result.broken_at == seq
    assert result.problem is not None and "does not match the chain" in result.problem


def test_the_shift_csv_has_the_second_opinion(log: VisualLog, tmp_path: Path) -> None:
    from core.reports import ShiftPlan, write_shift_report

    ids = [
        log.record(make_part(source_ref=f"p{i}"), inspection, model_hash=MODEL_HASH).part_id
        for i, inspection in enumerate(
            [_with_anomaly(0.1, 12.5), _with_anomaly(0.9, 1.0), make_inspection(0.2)]
        )
    ]
    start = log.get(ids[0]).created_at  # type: ignore[union-attr]
    plan = ShiftPlan.parse("00:00=day", "UTC")
    report = write_shift_report(log, plan.shift_on(date(start.year, start.month, start.day), "day"), tmp_path)
    with open(report.parts_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert header[-3:] == ["anomaly_score", "anomaly_threshold", "fired"]
    assert (body[ids[0]]["verdict"], body[ids[0]]["fired"]) == ("bad", "anomaly")
    assert body[ids[0]]["anomaly_score"] == "12.500000" and body[ids[0]]["anomaly_threshold"] == "10.000000"
    assert body[ids[1]]["fired"] == "classifier"
    assert (body[ids[2]]["anomaly_score"], body[ids[2]]["fired"]) == ("", "")
    assert (report.summary["bad_by_anomaly"], report.summary["bad_by_classifier"]) == ("1", "1")


def test_revision_0007_adds_and_removes_its_columns(fresh_db_url: str, tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from core.storage.migrate import MIGRATIONS

    mine = {"anomaly_score", "anomaly_threshold", "fired"}
    VisualLog(fresh_db_url, media_root=tmp_path / "media").close()  # migrated to the head
    engine = create_engine(fresh_db_url)
    try:
        assert mine <= {c["name"] for c in inspect(engine).get_columns("decisions")}
        triggers = _triggers(engine)
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.downgrade(config, "0006")
            assert not mine & {c["name"] for c in inspect(connection).get_columns("decisions")}
            command.upgrade(config, "0007")
        assert mine <= {c["name"] for c in inspect(engine).get_columns("decisions")}
        assert _triggers(engine) == triggers  # the append-only guards survive the round trip
    finally:
        engine.dispose()


def _triggers(engine: Any) -> set[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        else:
            rows = connection.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        return {r[0] for r in rows}


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_anomaly_score_is_refused(log: VisualLog, value: float) -> None:
    with pytest.raises(ValueError, match="must be finite"):
        log.record(make_part(), _with_anomaly(0.1, value), model_hash=MODEL_HASH)
