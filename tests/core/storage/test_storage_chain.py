"""The hash chain: every record linked to the one before, tampering found by verify-log."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from storage_helpers import MODEL_HASH, FakeClock, login, make_inspection, make_part, tamper

from core.cli import main
from core.common.types import Decision, Verdict
from core.storage import NotAllowedError, ReviewOutcome, VisualLog
from core.storage.auth import Actor
from core.storage.chain import GENESIS_HASH, _canonical, decision_hash


def _fill(log: VisualLog, user: Actor) -> list[Decision]:
    """Six decisions, a threshold change and two reviews: nine links."""
    decisions = [
        log.record(make_part(), make_inspection(score=s), model_hash=MODEL_HASH, model_name="tiny")
        for s in (0.1234567891, 0.9, 1 / 3)  # full-precision floats: writer and verifier must agree
    ]
    log.record_threshold_change(0.5, 0.6, actor=user, reason="fewer false rejects", model_hash=MODEL_HASH)
    decisions += [
        log.record(make_part(), make_inspection(score=0.55, threshold=0.6), model_hash=MODEL_HASH),
        log.record(make_part(image=False, error="truncated JPEG"), None, model_hash=None),
        log.record(make_part(), make_inspection(score=0.7, threshold=0.6), model_hash=MODEL_HASH),
    ]
    log.review(decisions[1].part_id, verdict=Verdict.BAD, actor=user, comment="scratch, yes")
    log.review(decisions[0].part_id, verdict=Verdict.BAD, actor=user, comment="missed a crack")
    return decisions


def test_the_chain_format_is_frozen() -> None:
    # Changing the canonical form would make every existing log fail verification.
    link = decision_hash(
        GENESIS_HASH,
        station="line-1",
        seq=1,
        part_id="01JPBQ8ZC7K3V6N3R8Y2W1T0AB",
        created_at=datetime(2025, 3, 14, 9, 30, 0, 123456, tzinfo=UTC),
        source_ref="/inbox/Prüfteil 7.png",
        content_hash=None,
        verdict="bad",
        score=0.8,
        threshold=0.5,
        reason=None,
        latency_ms=12.5,
        model_hash=MODEL_HASH,
        image_path="2025/03/14/01JPBQ8ZC7K3V6N3R8Y2W1T0AB.png",
        heatmap_path="2025/03/14/01JPBQ8ZC7K3V6N3R8Y2W1T0AB_heatmap.png",
        media_bytes=1234,
    )
    body = (
        '["decision","line-1",1,"01JPBQ8ZC7K3V6N3R8Y2W1T0AB","2025-03-14T09:30:00.123456Z",'
        '"/inbox/Prüfteil 7.png",null,"bad",0.8,0.5,null,12.5,"' + MODEL_HASH + '",'
        '"2025/03/14/01JPBQ8ZC7K3V6N3R8Y2W1T0AB.png","2025/03/14/01JPBQ8ZC7K3V6N3R8Y2W1T0AB_heatmap.png",1234]'
    )
    assert link == hashlib.sha256(f"{GENESIS_HASH}\n{body}".encode()).hexdigest()
    assert link == "4c909da13d20b8148dde3dbc2057055f1e9d9cda24aa461c3c95d12c8b2ca7d5"


# The fields of a decision in the frozen-form tests of versions 2 and 3.
_FROZEN_FIELDS: dict[str, Any] = {
    "station": "line-1",
    "seq": 1,
    "part_id": "01JPBQ8ZC7K3V6N3R8Y2W1T0AB",
    "created_at": datetime(2025, 3, 14, 9, 30, 0, 123456, tzinfo=UTC),
    "source_ref": "cam",
    "content_hash": None,
    "verdict": "bad",
    "score": 0.8,
    "threshold": 0.5,
    "reason": None,
    "latency_ms": 12.5,
    "model_hash": None,
    "image_path": "a.png",
    "heatmap_path": "b.png",
    "media_bytes": 3,
    "image_sha256": "1" * 64,
    "heatmap_sha256": None,
}
_FROZEN_BODY = (
    '"line-1",1,"01JPBQ8ZC7K3V6N3R8Y2W1T0AB","2025-03-14T09:30:00.123456Z","cam",null,'
    '"bad",0.8,0.5,null,12.5,null,"a.png","b.png",3,"' + "1" * 64 + '",null'
)


def test_the_chain_format_with_media_hashes_is_frozen() -> None:
    # Version 2 (revision 0003): another tag, and the files' hashes after the version 1 fields.
    link = decision_hash(GENESIS_HASH, **_FROZEN_FIELDS, hash_version=2)
    body = '["decision/2",' + _FROZEN_BODY + "]"
    assert link == hashlib.sha256(f"{GENESIS_HASH}\n{body}".encode()).hexdigest()


def test_the_chain_format_with_the_second_opinion_is_frozen() -> None:
    # Version 3 (issue 20): another tag, and the anomaly score, its threshold and which check fired
    # after the version 2 fields; a row without a second opinion has three nulls there.
    for second, tail in (
        ({"anomaly_score": 12.5, "anomaly_threshold": 10.0, "fired": "anomaly"}, '12.5,10.0,"anomaly"]'),
        ({}, "null,null,null]"),
    ):
        link = decision_hash(GENESIS_HASH, **_FROZEN_FIELDS, hash_version=3, **second)
        body = '["decision/3",' + _FROZEN_BODY + "," + tail
        assert link == hashlib.sha256(f"{GENESIS_HASH}\n{body}".encode()).hexdigest()


def test_the_fast_canonical_form_is_json() -> None:
    samples = [
        None, "", "plain", 'quo"te', "back\\slash", "new\nline\ttab", "\x00\x1f control", "Prüfteil ✓ 部品",
        "\u2028 separator", 0, 1, -7, 10**18, 0.0, -0.0, 0.1, 1e-300, 1.7976931348623157e308, 2.5e-05, 123456.789,
    ]  # fmt: skip
    for size in range(len(samples)):
        payload = samples[size:] + samples[:size]
        assert _canonical(payload) == json.dumps(
            payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    for bad in (float("nan"), float("inf"), True, b"bytes"):
        with pytest.raises((ValueError, TypeError)):
            _canonical([bad])


def test_records_form_one_chain_per_station(log: VisualLog, supervisor: Actor) -> None:
    assert log.verify().ok and log.chain_head().seq == 0
    _fill(log, supervisor)

    result = log.verify()
    assert result.ok, result.problem
    assert (result.records, result.pruned) == (9, 0)
    assert result.head == log.chain_head() and result.head.seq == 9
    with log.engine.connect() as connection:
        seqs = sorted(
            connection.execute(
                text(
                    "SELECT seq FROM decisions UNION ALL SELECT seq FROM threshold_changes UNION ALL SELECT seq FROM reviews"
                )
            ).scalars()
        )
    assert seqs == list(range(1, 10))

    changes = log.threshold_changes()
    assert [(c.old, c.new, c.user, c.seq) for c in changes] == [(0.5, 0.6, supervisor.name, 4)]
    reviews = log.reviews_of(log.latest(6)[-1].part_id)
    assert [(r.verdict, r.outcome, r.comment) for r in reviews] == [
        (Verdict.BAD, ReviewOutcome.OVERRIDDEN, "missed a crack")
    ]


def test_two_writers_of_one_station_never_fork_the_chain(
    db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    station = open_log(db_url)
    supervisor_tool = open_log(db_url, clock=FakeClock(datetime(2025, 3, 14, 10, 0, tzinfo=UTC)))
    ben = login(supervisor_tool, "ben", "admin")
    first = station.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    for _ in range(3):  # each side's cached head is stale every other time
        supervisor_tool.review(first.part_id, verdict=Verdict.BAD, actor=ben)
        station.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    assert station.verify().ok and station.chain_head().seq == 7


def test_reviews_join_the_chain_of_the_decision_station(
    db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    line_a = open_log(db_url, station="line-a")
    office = open_log(db_url, station="office")
    decision = line_a.record(make_part(), make_inspection(score=0.9), model_hash=MODEL_HASH)
    carla = login(office, "carla", "supervisor")

    review = office.review(decision.part_id, verdict=Verdict.GOOD, actor=carla)

    assert (review.station, review.seq, review.outcome) == ("line-a", 2, ReviewOutcome.OVERRIDDEN)
    assert line_a.verify().ok and line_a.chain_head().seq == 2
    assert office.chain_head().seq == 0


def test_only_registered_supervisors_review_and_change_thresholds(log: VisualLog) -> None:
    decision = log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    otto = login(log, "otto", "operator")
    sara = login(log, "sara", "supervisor")
    admin = login(log, "admin")
    log.set_user_active("sara", False, actor=admin)
    for user in ("nobody", otto, sara):
        with pytest.raises(NotAllowedError):
            log.review(decision.part_id, verdict=Verdict.GOOD, actor=user)  # type: ignore[arg-type]
        with pytest.raises(NotAllowedError):
            log.record_threshold_change(0.5, 0.4, actor=user, reason="test")  # type: ignore[arg-type]
    system = log.access.system_actor()
    with pytest.raises(ValueError, match="reason"):
        log.record_threshold_change(0.5, 0.4, actor=system, reason="  ")
    with pytest.raises(ValueError, match="between 0 and 1"):
        log.record_threshold_change(0.5, 1.5, actor=system, reason="typo")
    with pytest.raises(KeyError):
        log.review("0" * 26, verdict=Verdict.GOOD, actor=admin)
    with pytest.raises(NotAllowedError):
        log.review(decision.part_id, verdict=Verdict.GOOD, actor=system)  # the station never reviews
    with pytest.raises(ValueError, match="exists"):
        log.add_user("otto", role="admin", actor=admin)
    assert [u.name for u in log.users()] == ["admin", "otto", "sara", "system"]
    assert log.verify().ok and log.chain_head().seq == 1


# ---------------------------------------------------------------------------- tampering


def _seq_of(log: VisualLog, part_id: str) -> int:
    with log.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT seq FROM decisions WHERE part_id = :p"), {"p": part_id}
            ).scalar_one()
        )


@pytest.mark.parametrize(
    ("table", "statement", "index", "expected"),
    [
        ("decisions", "UPDATE decisions SET score = 0.2 WHERE part_id = :p", 1, "decision about part"),
        (
            "decisions",
            "UPDATE decisions SET source_ref = 'elsewhere' WHERE part_id = :p",
            4,
            "decision about part",
        ),
        ("decisions", "DELETE FROM decisions WHERE part_id = :p", 2, "missing"),
        ("decisions", "DELETE FROM decisions WHERE part_id = :p", 5, "at the end"),
        ("threshold_changes", "UPDATE threshold_changes SET new_threshold = 0.9", None, "threshold change"),
        (
            "reviews",
            "UPDATE reviews SET verdict = 'good' WHERE comment = 'scratch, yes'",
            None,
            "review of part",
        ),
        ("model_versions", "UPDATE model_versions SET hash = :other", 0, "decision about part"),
    ],
    ids=["edited-score", "edited-source", "deleted-row", "deleted-last-rows", "threshold", "review", "model"],
)
def test_tampering_is_found_at_its_first_broken_link(
    log: VisualLog,
    supervisor: Actor,
    table: str,
    statement: str,
    index: int | None,
    expected: str,
) -> None:
    decisions = _fill(log, supervisor)
    part_id = decisions[index].part_id if index is not None else None
    if expected == "at the end":  # the newest decision and the two reviews after it
        tamper(log, "reviews", "DELETE FROM reviews")
    tamper(log, table, statement, p=part_id, other="f" * 64)

    result = log.verify()

    assert not result.ok and result.problem is not None
    assert expected in result.problem
    if expected == "decision about part":
        assert part_id in result.problem and result.broken_at == _seq_of(log, part_id)
    elif expected == "missing":
        assert result.broken_at == 3 and "record 3 " in result.problem
    elif expected == "at the end":
        assert result.broken_at == 7 and "7 to 9" in result.problem
    elif table == "threshold_changes":
        assert result.broken_at == 4
    else:
        assert result.broken_at == 8


def test_a_rehashed_edit_breaks_the_next_link(log: VisualLog, supervisor: Actor) -> None:
    decisions = _fill(log, supervisor)
    # A careful tamperer recomputes the edited row's own hash; the next link still breaks.
    edited = decisions[1]
    seq = _seq_of(log, edited.part_id)
    with log.engine.connect() as connection:
        previous = connection.execute(
            text("SELECT row_hash FROM decisions WHERE seq = :s"), {"s": seq - 1}
        ).scalar_one()
    forged = decision_hash(
        previous,
        station=log.station,
        seq=seq,
        part_id=edited.part_id,
        created_at=edited.created_at,
        source_ref=edited.source_ref,
        content_hash=edited.content_hash,
        verdict="good",
        score=0.2,
        threshold=edited.threshold,
        reason=None,
        latency_ms=edited.latency_ms,
        model_hash=edited.model_hash,
        image_path=edited.image_path,
        heatmap_path=edited.heatmap_path,
        **_media_fields(log, edited.part_id),
    )
    tamper(
        log,
        "decisions",
        "UPDATE decisions SET verdict = 'good', score = 0.2, row_hash = :h WHERE part_id = :p",
        h=forged,
        p=edited.part_id,
    )

    result = log.verify()
    assert not result.ok and result.broken_at == seq + 1


def _media_fields(log: VisualLog, part_id: str) -> dict[str, Any]:
    """The row's hashed media fields, as ``decision_hash`` takes them."""
    with log.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT media_bytes, hash_version, image_sha256, heatmap_sha256 FROM decisions WHERE part_id = :p"
            ),
            {"p": part_id},
        ).one()
    return dict(row._mapping)


def test_verify_log_command_reports_the_first_broken_link(
    sqlite_url: str, open_log: Callable[..., VisualLog], capsys: pytest.CaptureFixture[str]
) -> None:
    log = open_log(sqlite_url, station="line-1")
    decisions = _fill(log, login(log, "anna"))
    other = open_log(sqlite_url, station="line-2")
    other.record(make_part(), make_inspection(), model_hash=MODEL_HASH)

    assert main(["verify-log", "--db", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "line-1: ok, 9 records; chain head 9:" in out and "line-2: ok, 1 records" in out

    tamper(log, "decisions", "UPDATE decisions SET score = 0.99 WHERE part_id = :p", p=decisions[2].part_id)
    assert main(["verify-log", "--db", sqlite_url]) == 1
    out = capsys.readouterr().out
    assert f"line-1: BROKEN at record 3: the decision about part {decisions[2].part_id}" in out
    assert "line-2: ok" in out
    assert main(["verify-log", "--db", sqlite_url, "--station", "line-2"]) == 0
