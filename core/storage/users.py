"""Users and roles: who may act on the log, and the check that an action's user is a supervisor.

Users are configuration: they are registered with a role and may later be deactivated, never
removed, so that past records keep naming them.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.storage.context import LogContext
from core.storage.errors import NotAllowedError, environment_errors
from core.storage.records import SUPERVISING_ROLES, SYSTEM_USER, Role, User
from core.storage.schema import RoleRow, UserRow


def add_user(context: LogContext, name: str, role: Role | str, display_name: str | None) -> User:
    """Register a user (see ``VisualLog.add_user``).

    Raises:
        ValueError: The name is empty or taken, or the role unknown.
    """
    name = name.strip()
    if not name:
        raise ValueError("a user needs a name")
    role = Role(role)
    created_at = context.now()
    with environment_errors(context.where), context.write_sessions() as session:
        role_id = session.scalar(select(RoleRow.id).where(RoleRow.name == role.value))
        if role_id is None:
            raise ValueError(f"role {role} is not in the database")
        session.add(
            UserRow(name=name, display_name=display_name, role_id=role_id, active=True, created_at=created_at)
        )
        try:
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
                raise ValueError(f"user {name!r} exists already") from exc
            raise
    return User(name=name, role=role, display_name=display_name, active=True, created_at=created_at)


def set_user_active(context: LogContext, name: str, active: bool) -> None:
    """Deactivate (or reactivate) a user.

    Raises:
        ValueError: The user is the system user.
        KeyError: No such user.
    """
    if name == SYSTEM_USER:
        raise ValueError("the system user cannot be deactivated")
    with environment_errors(context.where), context.writer.begin() as connection:
        changed = connection.execute(
            update(UserRow).where(UserRow.name == name).values(active=active)
        ).rowcount
    if not changed:
        raise KeyError(f"no user {name!r}")


def users(context: LogContext) -> list[User]:
    """Every registered user, by name."""
    query = (
        select(UserRow.name, RoleRow.name, UserRow.display_name, UserRow.active, UserRow.created_at)
        .join(RoleRow, UserRow.role_id == RoleRow.id)
        .order_by(UserRow.name)
    )
    with environment_errors(context.where), context.sessions() as session:
        return [
            User(name=n, role=Role(r), display_name=d, active=bool(a), created_at=c)
            for n, r, d, a, c in session.execute(query)
        ]


def supervisor_id(context: LogContext, name: str, action: str) -> int:
    """The row id of ``name``, who must be an active supervisor or admin to do ``action``.

    Database errors pass through (the caller wraps them).

    Raises:
        NotAllowedError: The user is unknown, inactive, or has another role; the message says
            which, and names ``action``.
    """
    with context.sessions() as session:
        found = session.execute(
            select(UserRow.id, UserRow.active, RoleRow.name)
            .join(RoleRow, UserRow.role_id == RoleRow.id)
            .where(UserRow.name == name)
        ).first()
    if found is None:
        raise NotAllowedError(f"unknown user {name!r} may not {action}; register them first")
    user_id, active, role = found
    if not active:
        raise NotAllowedError(f"user {name!r} is deactivated and may not {action}")
    if Role(role) not in SUPERVISING_ROLES:
        raise NotAllowedError(f"user {name!r} is an {role}; only a supervisor or admin may {action}")
    return int(user_id)
