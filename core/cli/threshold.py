"""``inspector threshold``: the what-if of a threshold change, applying it, its history, rollback.

A running station (``inspector run``, the window) reads the log's current threshold at most every
0.25 s before it inspects parts (``core.station.runtime.THRESHOLD_POLL_S``), so ``threshold set``
reaches it without a restart: a part arriving that long after the change is judged by it. Setting and rolling back authenticate (``core.cli.login``) and need a
role that may change a threshold; the what-if shown is kept with the change.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.cli.login import add_login_flags, login
from core.common.errors import UserError, user_errors

if TYPE_CHECKING:
    from core.reports.whatif import WhatIf
    from core.storage import VisualLog


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``inspector threshold`` and its actions to the parser."""
    p = sub.add_parser("threshold", help="what-if of a threshold change, set it, its history, roll back")
    action = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = action.add_parser("what-if", help="what a threshold would change on the logged parts (read only)")
    _common(a)
    a.add_argument("--threshold", type=float, required=True, help="the threshold considered, 0..1")
    _window(a)
    a.add_argument("--json", action="store_true", help="the figures as JSON")
    a.set_defaults(handler=_cmd_what_if)

    a = action.add_parser("set", help="apply a threshold (a supervisor's log-in, a reason)")
    _common(a)
    a.add_argument("value", type=float, help="the new threshold, 0..1")
    a.add_argument("--reason", required=True, help="why, in your words (kept with the change)")
    a.add_argument(
        "--accept-validation-misses",
        action="store_true",
        help="apply even though the new threshold misses defects of the bundle's validation set",
    )
    _window(a)
    add_login_flags(a)
    a.set_defaults(handler=_cmd_set)

    a = action.add_parser("history", help="every threshold change of the station, oldest first")
    _common(a)
    a.add_argument("--json", action="store_true", help="as JSON")
    a.set_defaults(handler=_cmd_history)

    a = action.add_parser("rollback", help="go back to the threshold of an earlier change (itself recorded)")
    _common(a)
    a.add_argument("seq", type=int, help="the change to go back to (its number in threshold history)")
    a.add_argument("--reason", help="why (default: rollback to change SEQ)")
    add_login_flags(a)
    a.set_defaults(handler=_cmd_rollback)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", metavar="URL", help="SQLAlchemy URL of the visual log (default: SQLite in the data dir)"
    )
    p.add_argument("--station", help="the station (default: the only one in the log)")


def _window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="ISO", help="start of the window, e.g. 2025-03-14T06:00+01:00")
    p.add_argument("--until", metavar="ISO", help="end of the window (default: now)")
    p.add_argument(
        "--window",
        choices=("shift", "24h", "7d"),
        default="24h",
        help="the window when --since is not given (default 24h; shift: the current one of the stored plan)",
    )


def _open(args: argparse.Namespace) -> VisualLog:
    from core.cli.storage import _open as open_log

    return open_log(args, station=args.station, pick=True)


def _time(text: str, flag: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UserError(f"{flag} {text!r} is not an ISO time such as 2025-03-14T06:00+01:00") from exc
    if value.tzinfo is None:
        value = value.astimezone()  # a local time as the user typed it
    return value.astimezone(UTC)


def _what_if(log: VisualLog, args: argparse.Namespace, proposed: float) -> WhatIf:
    from core.reports import DEFAULT_PLAN, ShiftPlan
    from core.reports.whatif import what_if, window

    now = log.now()
    if args.since:
        since = _time(args.since, "--since")
        until = _time(args.until, "--until") if args.until else now
    else:
        stored = log.shift_plan()
        plan = ShiftPlan.from_definitions(stored) if stored else ShiftPlan.parse(DEFAULT_PLAN)
        since, until = window(args.window, now, plan)
    with user_errors(ValueError):  # a threshold typed outside 0..1, no threshold recorded yet
        return what_if(log, proposed, since=since, until=until)


def _cmd_what_if(args: argparse.Namespace) -> int:
    from core.reports.whatif import describe

    with _open(args) as log:
        result = _what_if(log, args, args.threshold)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print("\n".join(describe(result)))
    return 0


def _model_of_last_change(log: VisualLog) -> tuple[str | None, str | None]:
    changes = log.threshold_changes()
    model_hash = next((c.model_hash for c in reversed(changes) if c.model_hash), None)
    name = next((m.name for m in log.models() if m.hash == model_hash), None) if model_hash else None
    return model_hash, name


def _apply(log: VisualLog, args: argparse.Namespace, value: float, reason: str, evidence: Any) -> None:
    old = log.current_threshold()
    actor = login(log, args)
    model_hash, model_name = _model_of_last_change(log)
    with user_errors(ValueError):  # a value outside 0..1, an empty reason
        change = log.record_threshold_change(
            old,
            value,
            actor=actor,
            reason=reason,
            model_hash=model_hash,
            model_name=model_name,
            evidence=evidence,
        )
    was = "none" if change.old is None else f"{change.old:.4f}"
    print(f"{log.station}: threshold {was} -> {change.new:.4f} by {change.user} (change {change.seq})")


def _cmd_set(args: argparse.Namespace) -> int:
    from core.reports.whatif import describe

    with _open(args) as log:
        result = _what_if(log, args, args.value) if log.current_threshold() is not None else None
        if result is not None:
            print("\n".join(describe(result)))
            if result.misses_validation_defects and not args.accept_validation_misses:
                raise UserError(
                    f"{args.value} misses {len(result.validation_missed)} defect(s) of the bundle's validation"
                    " set; nothing changed (--accept-validation-misses to apply anyway)"
                )
        _apply(log, args, args.value, args.reason, result.to_json() if result is not None else None)
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    with _open(args) as log:
        changes = log.threshold_changes()
    if args.json:
        rows = [
            {
                "seq": c.seq,
                "at": c.created_at.isoformat(),
                "user": c.user,
                "old": c.old,
                "new": c.new,
                "reason": c.reason,
                "model_hash": c.model_hash,
            }
            for c in changes
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for c in changes:
        was = "  -   " if c.old is None else f"{c.old:.4f}"
        print(f"{c.seq:>6}  {c.created_at:%Y-%m-%d %H:%M:%S}  {c.user:<12} {was} -> {c.new:.4f}  {c.reason}")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    with _open(args) as log:
        target = next((c for c in log.threshold_changes() if c.seq == args.seq), None)
        if target is None:
            raise UserError(
                f"no threshold change {args.seq} at {log.station}; see inspector threshold history"
            )
        reason = args.reason or f"rollback to change {target.seq} ({target.new:.4f}, set by {target.user})"
        _apply(log, args, target.new, reason, {"rollback_to": target.seq})
    return 0
