"""The alarm log (revision 0004): raised alarms and acknowledgements, append-only, per station."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text

from core.storage import VisualLog
from core.storage.alarms import AlarmEvent


def test_raised_and_acknowledged_alarms_are_read_back_in_order(
    db_url: str, open_log: Callable[..., VisualLog]
):
    log = open_log(db_url)
    raised = log.record_alarm("bad_run", "raised", "5 bad parts in a row: check the line")
    ack = log.record_alarm(
        "bad_run", AlarmEvent.ACKNOWLEDGED, raised.message, user="operator", raised_at=raised.created_at
    )
    rows = log.alarms()
    assert [(r.kind, r.event, r.user) for r in rows] == [
        ("bad_run", AlarmEvent.RAISED, None),
        ("bad_run", AlarmEvent.ACKNOWLEDGED, "operator"),
    ]
    assert rows[1].raised_at == raised.created_at and rows[1].id == ack.id
    assert rows[0].message == "5 bad parts in a row: check the line"
    assert log.alarms(since=ack.created_at + timedelta(seconds=1)) == []
    # Another station sharing the database sees only its own.
    other = open_log(db_url, station="station-2")
    assert other.alarms() == []


def test_an_acknowledgement_names_who_and_the_rows_cannot_be_changed(db_url: str, open_log):
    log = open_log(db_url)
    with pytest.raises(ValueError, match="who acknowledged"):
        log.record_alarm("source", "acknowledged", "source offline")
    with pytest.raises(ValueError):
        log.record_alarm("source", "forgotten", "source offline")
    log.record_alarm("source", "raised", "source offline")
    with pytest.raises(Exception, match="append-only"), log.engine.begin() as connection:
        connection.execute(text("UPDATE alarm_events SET message = 'nothing happened'"))
    with pytest.raises(Exception, match="append-only"), log.engine.begin() as connection:
        connection.execute(text("DELETE FROM alarm_events"))
    assert len(log.alarms()) == 1


def test_a_closed_log_refuses(db_url: str, open_log):
    log = open_log(db_url)
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.record_alarm("source", "raised", "source offline")
