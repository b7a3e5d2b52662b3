"""Log-in and roles, enforced in core: Argon2 passwords, one check, refusals recorded."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text
from storage_helpers import ADMIN_PASSWORD, MODEL_HASH, login, make_inspection, make_part

from core.common.types import Verdict
from core.reports import ShiftPlan
from core.storage import NotAllowedError, VisualLog
from core.storage.auth import LOGIN_REFUSED, ROLE_PERMISSIONS, Actor, Permission
from core.storage.records import Role


def _events(log: VisualLog) -> list[tuple[str, str, str | None]]:
    return [(e.user, e.event, e.action) for e in reversed(log.access.events(limit=None))]


def test_the_first_admin_then_log_in_with_argon2(log: VisualLog) -> None:
    assert log.access.needs_admin()
    with pytest.raises(NotAllowedError):  # only an admin, and only with a password, without a log-in
        log.add_user("otto", role="operator", password="otto-password")
    with pytest.raises(ValueError, match="at least 8"):
        log.add_user("admin", role="admin", password="short")
    log.add_user("admin", role="admin", password=ADMIN_PASSWORD)
    assert not log.access.needs_admin()
    with pytest.raises(NotAllowedError):  # the first run is over
        log.add_user("eve", role="admin", password="eve-password")

    with log.engine.connect() as connection:
        stored = connection.execute(text("SELECT password_hash FROM users WHERE name = 'admin'")).scalar_one()
    assert stored.startswith("$argon2id$") and ADMIN_PASSWORD not in stored

    admin = log.authenticate("admin", ADMIN_PASSWORD)
    assert (admin.name, admin.role) == ("admin", Role.ADMIN)
    assert admin.authenticated_at.tzinfo is not None
    assert [(u.name, u.has_password) for u in log.users()] == [("admin", True), ("system", False)]
    assert _events(log)[:2] == [("otto", "denied", "manage users"), ("admin", "first_admin", None)]


def test_wrong_passwords_are_refused_alike_and_recorded(log: VisualLog) -> None:
    login(log, "anna")
    refusals = []
    for name, password in (("anna", "wrong-password"), ("nobody", "anna-password"), ("system", "")):
        with pytest.raises(NotAllowedError) as refused:
            log.authenticate(name, password)
        refusals.append(str(refused.value))
    assert refusals == [LOGIN_REFUSED] * 3  # never says whether the name or the password was wrong
    failed = [(user, event) for user, event, _ in _events(log) if event == "login_failed"]
    assert failed == [("anna", "login_failed"), ("nobody", "login_failed"), ("system", "login_failed")]


def test_an_actor_is_only_given_out_by_a_log_in() -> None:
    from datetime import UTC, datetime

    with pytest.raises(TypeError):
        Actor(name="anna", role=Role.ADMIN, authenticated_at=datetime.now(UTC))


def test_an_operator_is_refused_in_core_and_the_refusal_is_recorded(log: VisualLog) -> None:
    decision = log.record(make_part(), make_inspection(score=0.9), model_hash=MODEL_HASH)
    otto = login(log, "otto", "operator")
    head = log.chain_head()
    calls: dict[Permission, Callable[[], object]] = {
        Permission.CHANGE_THRESHOLD: lambda: log.record_threshold_change(0.5, 0.4, actor=otto, reason="x"),
        Permission.REVIEW: lambda: log.review(decision.part_id, verdict=Verdict.GOOD, actor=otto),
        Permission.KEEP: lambda: log.keep(decision.part_id, actor=otto, reason="x"),
        Permission.MANAGE_USERS: lambda: log.add_user(
            "eve", role="admin", password="eve-password", actor=otto
        ),
        Permission.RETENTION: lambda: log.prune(actor=otto),
        Permission.SHIFTS: lambda: log.set_shift_plan(ShiftPlan.parse("06:00=a").definitions(), actor=otto),
    }
    for permission, call in calls.items():
        with pytest.raises(NotAllowedError, match=f"otto may not {permission.value}"):
            call()
    # A bare name is no proof either.
    with pytest.raises(NotAllowedError, match="a user name alone is not enough"):
        log.review(decision.part_id, verdict=Verdict.GOOD, actor="anna")  # type: ignore[arg-type]

    denied = [(user, action) for user, event, action in _events(log) if event == "denied"]
    assert denied == [("otto", p.value) for p in calls] + [("anna", "review decisions")]
    assert log.chain_head() == head and log.reviews_of(decision.part_id) == []
    assert log.threshold_changes() == [] and log.shift_plan() == []


def test_roles_allow_what_the_table_says(log: VisualLog) -> None:
    decision = log.record(make_part(), make_inspection(score=0.9), model_hash=MODEL_HASH)
    ben = login(log, "ben", "engineer")
    sara = login(log, "sara", "supervisor")
    log.set_shift_plan(ShiftPlan.parse("06:00=a,18:00=b").definitions(), actor=ben)
    with pytest.raises(NotAllowedError):
        log.set_shift_plan([], actor=sara)
    log.review(decision.part_id, verdict=Verdict.BAD, actor=sara)
    log.record_threshold_change(0.5, 0.6, actor=ben, reason="engineer's call")
    assert ROLE_PERMISSIONS[Role.OPERATOR] == frozenset()
    assert ben.may(Permission.SHIFTS) and not sara.may(Permission.SHIFTS)
    assert [c.user for c in log.threshold_changes()] == ["ben"]


def test_the_database_is_asked_again_at_each_action(
    log: VisualLog, db_url: str, open_log: Callable[..., VisualLog]
) -> None:
    decision = log.record(make_part(), make_inspection(score=0.9), model_hash=MODEL_HASH)
    sara = login(log, "sara", "supervisor")
    admin = login(log, "admin")
    other = open_log(db_url)  # another process's log: the Actor is proof on any log of the database
    other.review(decision.part_id, verdict=Verdict.BAD, actor=sara)

    log.set_user_active("sara", False, actor=admin)
    with pytest.raises(NotAllowedError, match="deactivated"):
        other.review(decision.part_id, verdict=Verdict.GOOD, actor=sara)
    with pytest.raises(NotAllowedError, match="deactivated"):  # only after the right password
        log.authenticate("sara", "sara-password")
    log.set_user_active("sara", True, actor=admin)

    log.access.set_password("sara", "a-new-password", actor=admin)
    with pytest.raises(NotAllowedError, match="log in again"):
        log.review(decision.part_id, verdict=Verdict.GOOD, actor=sara)
    sara = log.authenticate("sara", "a-new-password")
    log.access.set_password("sara", "sara-own-choice", actor=sara)  # her own
    with pytest.raises(NotAllowedError):
        log.access.set_password("admin", "taken-over!", actor=log.authenticate("sara", "sara-own-choice"))
    assert len(log.reviews_of(decision.part_id)) == 1


def test_the_station_itself_may_only_set_its_threshold_and_retention(log: VisualLog) -> None:
    decision = log.record(make_part(), make_inspection(score=0.9), model_hash=MODEL_HASH)
    system = log.access.system_actor()
    log.record_threshold_change(None, 0.5, actor=system, reason="start-up")
    log.prune(dry_run=False)  # scheduled retention: nothing old enough here
    for call in (
        lambda: log.review(decision.part_id, verdict=Verdict.GOOD, actor=system),
        lambda: log.keep(decision.part_id, actor=system, reason="x"),
        lambda: log.add_user("eve", role="admin", password="eve-password", actor=system),
    ):
        with pytest.raises(NotAllowedError, match="the station itself"):
            call()
    with pytest.raises(ValueError, match="never logs in"):
        log.access.set_password("system", "a-password!", actor=login(log, "admin"))


def test_access_events_are_append_only(log: VisualLog) -> None:
    login(log, "anna")
    with pytest.raises(Exception, match="append-only"), log.engine.begin() as connection:
        connection.execute(text("DELETE FROM access_events"))
    with pytest.raises(Exception, match="append-only"), log.engine.begin() as connection:
        connection.execute(text("UPDATE access_events SET event = 'login'"))
    assert len(log.access.events(limit=None)) >= 3


def test_guessing_is_slowed_after_five_failures(log: VisualLog) -> None:
    login(log, "anna")
    for _ in range(5):
        with pytest.raises(NotAllowedError, match="wrong user name or password"):
            log.authenticate("anna", "a guess!")
    with pytest.raises(NotAllowedError, match="too many failed log-ins as 'anna'"):
        log.authenticate("anna", "anna-password")  # even the right one, for a while
    assert log.authenticate("admin", ADMIN_PASSWORD).name == "admin"  # other names are not held
    assert [e.event for e in log.access.events(limit=2)][1] == "login_throttled"
