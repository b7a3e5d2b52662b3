"""Users and roles: who may act on the log, registered by an admin (or, once, by the first run).

Users are configuration: they are registered with a role and may later be deactivated, never
removed, so that past records keep naming them. Who may do what is ``core.storage.auth``'s.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.storage.auth import Actor, Permission, hash_password, needs_admin, record_event, require
from core.storage.context import LogContext
from core.storage.errors import NotAllowedError, environment_errors
from core.storage.records import SYSTEM_USER, Role, User
from core.storage.schema import RoleRow, UserRow


def add_user(
    context: LogContext,
    name: str,
    role: Role | str,
    display_name: str | None,
    *,
    password: str | None,
    actor: Actor | None,
) -> User:
    """Register a user (see ``VisualLog.add_user``).

    Without ``actor`` only the first-run step is allowed: an admin with a password while no
    admin can log in (``auth.needs_admin``).

    Raises:
        NotAllowedError: ``actor`` may not manage users, or no actor outside the first run.
        ValueError: The name is empty or taken, the role unknown, or the password too short.
    """
    name = name.strip()
    if not name:
        raise ValueError("a user needs a name")
    role = Role(role)
    password_hash = hash_password(password) if password is not None else None
    first_admin = actor is None
    if actor is None:
        if not (role is Role.ADMIN and password_hash is not None and needs_admin(context)):
            record_event(context, name, "denied", action=Permission.MANAGE_USERS.value, detail="no log-in")
            raise NotAllowedError(
                "registering a user needs an admin's log-in (only the first admin is created without one)"
            )
    else:
        require(context, actor, Permission.MANAGE_USERS)
    created_at = context.now()
    with environment_errors(context.where), context.write_sessions() as session:
        role_id = session.scalar(select(RoleRow.id).where(RoleRow.name == role.value))
        if role_id is None:
            raise ValueError(f"role {role} is not in the database")
        session.add(
            UserRow(
                name=name,
                display_name=display_name,
                role_id=role_id,
                active=True,
                created_at=created_at,
                password_hash=password_hash,
                password_set_at=created_at if password_hash is not None else None,
            )
        )
        try:
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
                raise ValueError(f"user {name!r} exists already") from exc
            raise
    if first_admin:
        record_event(context, name, "first_admin")
    return User(
        name=name,
        role=role,
        display_name=display_name,
        active=True,
        created_at=created_at,
        has_password=password_hash is not None,
    )


def set_user_active(context: LogContext, name: str, active: bool, actor: Actor) -> None:
    """Deactivate (or reactivate) a user.

    Raises:
        NotAllowedError: ``actor`` may not manage users.
        ValueError: The user is the system user.
        KeyError: No such user.
    """
    if name == SYSTEM_USER:
        raise ValueError("the system user cannot be deactivated")
    require(context, actor, Permission.MANAGE_USERS)
    with environment_errors(context.where), context.writer.begin() as connection:
        changed = connection.execute(
            update(UserRow).where(UserRow.name == name).values(active=active)
        ).rowcount
    if not changed:
        raise KeyError(f"no user {name!r}")


def users(context: LogContext) -> list[User]:
    """Every registered user, by name."""
    query = (
        select(
            UserRow.name,
            RoleRow.name,
            UserRow.display_name,
            UserRow.active,
            UserRow.created_at,
            UserRow.password_hash.is_not(None),
        )
        .join(RoleRow, UserRow.role_id == RoleRow.id)
        .order_by(UserRow.name)
    )
    with environment_errors(context.where), context.sessions() as session:
        return [
            User(name=n, role=Role(r), display_name=d, active=bool(a), created_at=c, has_password=bool(p))
            for n, r, d, a, c, p in session.execute(query)
        ]
