"""Who may change what the station decides or what the record says: log-in, roles, and the one check.

Every record-changing operation of the visual log (a threshold change, a review, a keep mark,
user administration, retention, the shift plan) takes an ``Actor`` and calls ``require`` before
it writes anything. An ``Actor`` is given out only by ``authenticate`` (a name and a password
checked against the user's Argon2 hash) or, for the station's own writes, by ``system_actor``;
``require`` reads the user's role and state from the database again, so a user deactivated or
moved to another role since logging in is refused. A refused action and a failed log-in are
recorded in ``access_events`` before the error is raised; a failed log-in never says whether the
name or the password was wrong.

Watching the station needs no log-in: reading the log takes no ``Actor``.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, insert, select, update

from core.storage.context import LogContext, utc_now
from core.storage.errors import NotAllowedError, environment_errors
from core.storage.records import SYSTEM_USER, AccessEvent, Role
from core.storage.schema import AccessEventRow, RoleRow, UserRow

log = logging.getLogger(__name__)

# Argon2id with argon2-cffi's default parameters (RFC 9106, low memory). Tests may replace it
# with a cheaper profile; hashes carry their own parameters, so any hasher verifies any hash.
HASHER = PasswordHasher()

MIN_PASSWORD_LENGTH = 8
MAX_FAILURES = 5  # failed log-ins of one name within THROTTLE_S before further tries are refused
THROTTLE_S = 300
LOGIN_REFUSED = "wrong user name or password"
_NAME_LENGTH = 100  # access_events.user_name


class Permission(enum.StrEnum):
    """An action that changes what the station decides or what the record says (the value reads
    in a sentence: "anna may not change a threshold")."""

    CHANGE_THRESHOLD = "change a threshold"
    REVIEW = "review decisions"
    KEEP = "keep decisions"
    MANAGE_USERS = "manage users"
    RETENTION = "apply retention"
    SHIFTS = "change the shift plan"


_SUPERVISOR = frozenset({Permission.CHANGE_THRESHOLD, Permission.REVIEW, Permission.KEEP})

# What each role may do. Operators watch and run the station; nothing they do changes a record.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OPERATOR: frozenset(),
    Role.SUPERVISOR: _SUPERVISOR,
    Role.ENGINEER: _SUPERVISOR | {Permission.SHIFTS},
    Role.ADMIN: frozenset(Permission),
}

# The station's own writes: the threshold it starts with, and scheduled retention.
_SYSTEM_PERMISSIONS = frozenset({Permission.CHANGE_THRESHOLD, Permission.RETENTION})

_SEAL = object()  # only this module makes Actors


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """A user who proved who they are: what every record-changing call of the log takes.

    Made only by ``VisualLog.authenticate`` (or ``system_actor`` for the station itself);
    constructing one directly raises ``TypeError``. The role is as it was at log-in: ``require``
    checks the database again at each action.
    """

    name: str
    role: Role
    authenticated_at: datetime  # UTC
    _seal: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._seal is not _SEAL:
            raise TypeError("an Actor is given out by VisualLog.authenticate, not constructed")

    def may(self, permission: Permission) -> bool:
        """Whether the role held at log-in allows ``permission`` (for showing controls; core checks again)."""
        if self.name == SYSTEM_USER:
            return permission in _SYSTEM_PERMISSIONS
        return permission in ROLE_PERMISSIONS[self.role]


def system_actor(context: LogContext | None = None) -> Actor:
    """The station itself, for its own writes only (the threshold it starts with, scheduled retention)."""
    # The wall clock, not the log's: the station's log-in is no event of the log.
    return Actor(name=SYSTEM_USER, role=Role.ADMIN, authenticated_at=utc_now(), _seal=_SEAL)


def check_password(password: str) -> str:
    """The password, when it is long enough to be set.

    Raises:
        ValueError: Shorter than ``MIN_PASSWORD_LENGTH`` characters.
    """
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    """The Argon2id hash (PHC string) of a password that ``check_password`` accepts."""
    return HASHER.hash(check_password(password))


# A hash to verify against when the user is unknown, so that the answer takes as long.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = HASHER.hash("not a password of anyone")
    return _DUMMY_HASH


def authenticate(context: LogContext, name: str, password: str) -> Actor:
    """Check a user's password; record the log-in or the failure (see ``VisualLog.authenticate``).

    Raises:
        NotAllowedError: Unknown user, deactivated, no password set, or a wrong password: the
            message is the same for each (``LOGIN_REFUSED``), and the attempt is recorded.
        StorageError: The database refused.
    """
    name = (name or "").strip()
    since = context.now() - timedelta(seconds=THROTTLE_S)
    a = AccessEventRow
    with environment_errors(context.where), context.sessions() as session:
        failures = session.scalar(
            select(func.count())
            .select_from(a)
            .where(a.user_name == name[:_NAME_LENGTH], a.event == "login_failed", a.created_at >= since)
        )
        found = session.execute(
            select(UserRow.password_hash, UserRow.active, RoleRow.name)
            .join(RoleRow, UserRow.role_id == RoleRow.id)
            .where(UserRow.name == name)
        ).first()
    if (failures or 0) >= MAX_FAILURES:
        # Guessing is slowed to MAX_FAILURES tries per THROTTLE_S for a name, right or wrong.
        record_event(context, name, "login_throttled")
        raise NotAllowedError(f"too many failed log-ins as {name!r}; wait {THROTTLE_S // 60} minutes")
    stored = found[0] if found is not None else None
    ok = False
    try:
        ok = HASHER.verify(stored or _dummy_hash(), password or "") and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or found is None:
        record_event(context, name, "login_failed")
        raise NotAllowedError(LOGIN_REFUSED)
    if not found[1]:
        # Said only to someone who knows the password.
        record_event(context, name, "login_failed", detail="deactivated")
        raise NotAllowedError(f"user {name!r} is deactivated; ask an admin")
    if stored is not None and HASHER.check_needs_rehash(stored):
        # Stronger parameters since the hash was made: store the password's new hash.
        with environment_errors(context.where), context.writer.begin() as connection:
            connection.execute(
                update(UserRow).where(UserRow.name == name).values(password_hash=HASHER.hash(password))
            )
    record_event(context, name, "login")
    return Actor(name=name, role=Role(found[2]), authenticated_at=context.now(), _seal=_SEAL)


def require(context: LogContext, actor: Actor, permission: Permission | None) -> int:
    """The user row id of ``actor`` when the database says they may do ``permission`` now.

    ``permission`` None asks only that the actor is a logged-in, active user.

    The one check every record-changing operation calls before writing. A refusal is recorded
    (``access_events``, event ``denied``) before it is raised.

    Raises:
        NotAllowedError: Not an ``Actor``; the user is unknown or deactivated, their password
            changed since they logged in, or their role does not allow ``permission``.
        StorageError: The database refused.
    """
    if not isinstance(actor, Actor):
        # A bare name (the old ``user="anna"``) is not a proof of anything.
        name = str(actor)[:_NAME_LENGTH]
        _deny(context, name, permission, "no log-in: a user name alone is not enough")
    with environment_errors(context.where), context.sessions() as session:
        found = session.execute(
            select(UserRow.id, UserRow.active, RoleRow.name, UserRow.password_set_at)
            .join(RoleRow, UserRow.role_id == RoleRow.id)
            .where(UserRow.name == actor.name)
        ).first()
    if found is None:
        _deny(context, actor.name, permission, "unknown user")
    user_id, active, role_name, password_set_at = found
    role = Role(role_name)
    if not active:
        _deny(context, actor.name, permission, "deactivated")
    if actor.name == SYSTEM_USER:
        if permission is None or permission not in _SYSTEM_PERMISSIONS:
            _deny(context, actor.name, permission, "the station itself may not do this")
        return int(user_id)
    if password_set_at is not None and password_set_at > actor.authenticated_at:
        _deny(context, actor.name, permission, "the password changed since the log-in; log in again")
    if permission is not None and permission not in ROLE_PERMISSIONS[role]:
        _deny(context, actor.name, permission, f"the role {role.value} does not allow it")
    return int(user_id)


def _deny(context: LogContext, name: str, permission: Permission | None, why: str) -> NoReturn:
    action = permission.value if permission is not None else "act"
    record_event(context, name, "denied", action=action, detail=why)
    raise NotAllowedError(f"{name} may not {action}: {why}")


def record_event(
    context: LogContext, name: str, event: str, *, action: str | None = None, detail: str | None = None
) -> None:
    """Append an access event in its own transaction.

    A database that refuses is logged, not raised: the refusal or failed log-in that is being
    recorded must still reach the caller as such.
    """
    try:
        with environment_errors(context.where), context.writer.begin() as connection:
            connection.execute(
                insert(AccessEventRow).values(
                    created_at=context.now(),
                    station=context.station,
                    user_name=(name or "")[:_NAME_LENGTH],
                    event=event,
                    action=action,
                    detail=detail,
                )
            )
    except Exception:
        log.exception("recording the access event %s of %r failed", event, name)


def access_events(context: LogContext, since: datetime | None, limit: int | None) -> list[AccessEvent]:
    """Access events of every station, newest first."""
    a = AccessEventRow
    query = select(a.created_at, a.station, a.user_name, a.event, a.action, a.detail).order_by(
        a.created_at.desc(), a.id.desc()
    )
    if since is not None:
        query = query.where(a.created_at >= since)
    if limit is not None:
        query = query.limit(limit)
    with environment_errors(context.where), context.sessions() as session:
        return [
            AccessEvent(created_at=at, station=station, user=user, event=event, action=action, detail=detail)
            for at, station, user, event, action, detail in session.execute(query)
        ]


def needs_admin(context: LogContext) -> bool:
    """True while no active admin can log in: the first-run step may then create one."""
    query = (
        select(UserRow.id)
        .join(RoleRow, UserRow.role_id == RoleRow.id)
        .where(RoleRow.name == Role.ADMIN.value, UserRow.active.is_(True), UserRow.password_hash.is_not(None))
        .limit(1)
    )
    with environment_errors(context.where), context.sessions() as session:
        return session.scalar(query) is None


def set_password(context: LogContext, name: str, password: str, actor: Actor) -> None:
    """Set a user's password: their own, or anyone's by a user who may manage users.

    Raises:
        NotAllowedError: ``actor`` may not; recorded.
        ValueError: The password is too short, or the user is the system user.
        KeyError: No such user.
    """
    if name == SYSTEM_USER:
        raise ValueError("the system user never logs in")
    new_hash = hash_password(password)
    own = isinstance(actor, Actor) and actor.name == name
    # Anyone logged in may change their own password; require() still checks they are active.
    require(context, actor, None if own else Permission.MANAGE_USERS)
    with environment_errors(context.where), context.writer.begin() as connection:
        changed = connection.execute(
            update(UserRow)
            .where(UserRow.name == name)
            .values(password_hash=new_hash, password_set_at=context.now())
        ).rowcount
    if not changed:
        raise KeyError(f"no user {name!r}")
    record_event(context, name, "password_set", detail=None if actor.name == name else f"by {actor.name}")


@dataclass(frozen=True, slots=True)
class Access:
    """``VisualLog.access``: the log-in side of an open log, beyond ``VisualLog.authenticate``."""

    context: LogContext

    def needs_admin(self) -> bool:
        """True while no active admin can log in (the first-run step then creates one)."""
        return needs_admin(self.context)

    def set_password(self, name: str, password: str, *, actor: Actor) -> None:
        """Set a user's password: their own, or anyone's by an admin (see ``set_password``)."""
        set_password(self.context, name, password, actor)

    def events(self, *, since: datetime | None = None, limit: int | None = 100) -> list[AccessEvent]:
        """Log-ins, failed log-ins and refused actions of every station, newest first."""
        return access_events(self.context, since, limit)

    def require(self, actor: Actor, permission: Permission) -> None:
        """Refuse (and record) unless ``actor`` may do ``permission`` now: for operations outside
        ``core.storage`` that change records (e.g. a labelled export is not one; a review is)."""
        require(self.context, actor, permission)

    def system_actor(self) -> Actor:
        """The station itself, for its own start-up threshold and scheduled retention."""
        return system_actor(self.context)
