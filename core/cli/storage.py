"""Commands of the visual log: log, verify-log, report, backup, prune, users, shifts, review, keep.

``core.cli`` calls ``register``; handlers import the storage modules only when they run, so
``inspector --help`` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.login import add_login_flags, login, read_new_password
from core.common.errors import UserError, user_errors

if TYPE_CHECKING:
    from core.storage import VisualLog

_GB = 1024**3
_MEDIA_SHOWN = 20  # media problems listed one by one


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the visual log's commands to the ``inspector`` parser."""
    p = sub.add_parser("log", help="show the newest decisions of the visual log")
    _add_db(p, media=False)
    p.add_argument("--station", help="the station (default: the only one in the log)")
    p.add_argument("--last", type=int, default=20, help="how many decisions, newest first (default 20)")
    p.set_defaults(handler=_cmd_log)

    p = sub.add_parser("verify-log", help="check the visual log's hash chains; report the first broken link")
    _add_db(p, media=True)
    p.add_argument("--station", help="only this station (default: every station)")
    p.add_argument(
        "--media", action="store_true", help="also re-hash every image and heatmap against the chain"
    )
    p.add_argument(
        "--against",
        metavar="FILE_OR_HEAD",
        action="append",
        default=[],
        help="a head written down earlier: a shift summary CSV, a backup's .heads file, or [STATION:]SEQ:HASH;"
        " its record must still be in the chain with that hash (repeatable)",
    )
    p.set_defaults(handler=_cmd_verify_log)

    p = sub.add_parser("report", help="write a shift's CSV report (one line per part) and its summary")
    _add_db(p, media=False)
    p.add_argument(
        "--shift",
        required=True,
        help="current, previous, DATE/NAME (2025-03-14/night), a local time (2025-03-14T07:30) or a name",
    )
    p.add_argument("--station", help="the station (default: the only one in the log)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for the CSV files (default: here)")
    p.add_argument("--shifts", metavar="PLAN", help="shift starts, e.g. 06:00=early,14:00=late,22:00=night")
    p.add_argument("--tz", help="time zone of the shift times, e.g. Europe/Berlin (default: local)")
    p.add_argument("--no-verify", action="store_true", help="do not walk the hash chain (faster)")
    p.set_defaults(handler=_cmd_report)

    p = sub.add_parser("backup", help="copy the SQLite visual log (online) and optionally its media files")
    p.add_argument("destination", type=Path, help="folder for the backup")
    _add_db(p, media=True)
    p.add_argument("--media", action="store_true", help="also copy new images and heatmaps")
    p.set_defaults(handler=_cmd_backup)

    p = sub.add_parser("prune", help="apply retention: remove old decisions' files, then their rows")
    _add_db(p, media=True)
    p.add_argument("--station", help="the station (default: the only one in the log)")
    p.add_argument("--good-days", type=float, default=30.0, help="keep good parts this long (default 30)")
    p.add_argument(
        "--not-inspected-days",
        type=float,
        default=90.0,
        help="keep not-inspected parts this long (default 90)",
    )
    p.add_argument("--bad-days", type=float, default=365.0, help="keep bad parts this long (default 365)")
    p.add_argument("--max-media-gb", type=float, help="keep the station's media files under this size")
    p.add_argument("--min-free-gb", type=float, help="keep at least this much free on the media drive")
    add_login_flags(p, required=False)  # an admin; a dry run needs no log-in
    p.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    p.set_defaults(handler=_cmd_prune)

    p = sub.add_parser(
        "users",
        help="list, add or deactivate users, set passwords (the first admin: users add NAME --role admin)",
    )
    _add_db(p, media=False)
    action = p.add_subparsers(dest="action", metavar="ACTION")
    a = action.add_parser("list", help="list users (the default)")
    a = action.add_parser(
        "add", help="register a user with a password (an admin's log-in, or the first admin)"
    )
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=("operator", "supervisor", "engineer", "admin"))
    a.add_argument("--display-name")
    a.add_argument(
        "--new-password-file", type=Path, metavar="FILE", help="the new user's password (first line)"
    )
    add_login_flags(a)
    a = action.add_parser("deactivate", help="deactivate a user (their records keep their name)")
    a.add_argument("name")
    add_login_flags(a)
    a = action.add_parser("passwd", help="set a user's password (your own, or anyone's as an admin)")
    a.add_argument("name")
    a.add_argument("--new-password-file", type=Path, metavar="FILE", help="the new password (first line)")
    add_login_flags(a)
    p.set_defaults(handler=_cmd_users, action="list")

    p = sub.add_parser("shifts", help="show or set the shift plan used by reports")
    _add_db(p, media=False)
    p.add_argument("--set", metavar="PLAN", help="e.g. 06:00=early,14:00=late,22:00=night")
    p.add_argument("--tz", help="time zone of the plan, e.g. Europe/Berlin (default: local)")
    add_login_flags(p, required=False)  # --set: an engineer or admin
    p.set_defaults(handler=_cmd_shifts)

    p = sub.add_parser("review", help="confirm or override a decision (a new linked record)")
    _add_db(p, media=False)
    p.add_argument("part_id")
    p.add_argument("--verdict", required=True, choices=("good", "bad"), help="what the part really is")
    add_login_flags(p)
    p.add_argument("--comment")
    p.set_defaults(handler=_cmd_review)

    p = sub.add_parser("keep", help="mark a decision so that retention never removes it")
    _add_db(p, media=False)
    p.add_argument("part_id")
    add_login_flags(p)
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=_cmd_keep)


def _add_db(p: argparse.ArgumentParser, *, media: bool) -> None:
    p.add_argument(
        "--db", metavar="URL", help="SQLAlchemy URL of the visual log (default: SQLite in the data dir)"
    )
    if media:
        p.add_argument(
            "--media-root", type=Path, help="folder of images and heatmaps (default: in the data dir)"
        )


def _open(args: argparse.Namespace, *, station: str | None = None, pick: bool = False) -> VisualLog:
    """Open the log; with ``pick``, for the station named or the only one there is."""
    from core.storage import VisualLog

    media_root = getattr(args, "media_root", None)
    log = VisualLog(args.db, media_root=media_root, station=station or "station-1")
    if not pick or station:
        return log
    names = log.stations()
    if len(names) == 1:
        log.close()
        return VisualLog(args.db, media_root=media_root, station=names[0])
    log.close()
    if not names:
        raise UserError("the visual log has no stations yet")
    raise UserError(f"the log holds several stations; choose one with --station ({', '.join(names)})")


def _cmd_log(args: argparse.Namespace) -> int:
    with _open(args, station=args.station, pick=True) as log:
        for d in log.latest(args.last):
            score = "  -   " if d.score is None else f"{d.score:.4f}"
            print(
                f"{d.created_at:%Y-%m-%d %H:%M:%S}  {d.verdict.value:<13} {score}  {d.source_ref}  {d.reason or ''}"
            )
        counts = log.counts()
    print(f"{log.station}: " + ", ".join(f"{v.value}: {n}" for v, n in counts.items()))
    return 0


def _cmd_verify_log(args: argparse.Namespace) -> int:
    with _open(args) as log:
        names = [args.station] if args.station else log.stations()
        if not names:
            print("the visual log is empty: nothing to verify")
            return 0
        broken = 0
        for name in names:
            result = log.verify(station=name)
            pruned = f", {result.pruned} removed by retention" if result.pruned else ""
            if result.ok:
                print(f"{name}: ok, {result.records} records{pruned}; chain head {result.head}")
            else:
                broken += 1
                print(f"{name}: BROKEN at record {result.broken_at}: {result.problem}")
            if args.media:
                broken += not _report_media(log, name)
        broken += not _check_anchors(log, args.against, names)
    return 1 if broken else 0


def _check_anchors(log: VisualLog, values: list[str], names: list[str]) -> bool:
    """Check the log against each anchor given; True when every one holds."""
    from core.storage.anchors import read_anchors

    holds = True
    for value in values:
        with user_errors(ValueError, OSError):  # a file or head the user typed
            anchors = read_anchors(value)
        for anchor in anchors:
            station = anchor.station
            if station is None:
                if len(names) != 1:
                    raise UserError(f"{value}: name the station, e.g. STATION:SEQ:HASH ({', '.join(names)})")
                station = names[0]
            with user_errors(KeyError):
                problem = log.check_anchor(anchor.head, station=station)
            if problem is None:
                print(f"{station}: holds the anchor {anchor.head}")
            else:
                holds = False
                print(f"{station}: ANCHOR BROKEN: {problem}")
    return holds


def _report_media(log: VisualLog, name: str) -> bool:
    """Print the media check of one station; True when every file is as recorded."""
    media = log.verify_media(station=name)
    unhashed = f" ({media.unhashed} from before media hashing: checked to exist)" if media.unhashed else ""
    if media.ok:
        print(f"{name}: media ok, {media.files} files{unhashed}")
        return True
    missing = sum(p.problem == "missing" for p in media.problems)
    changed = len(media.problems) - missing
    print(f"{name}: media BROKEN: {missing} missing, {changed} changed of {media.files} files{unhashed}")
    for problem in media.problems[:_MEDIA_SHOWN]:
        print(f"  {problem.problem}: {problem.path} (part {problem.part_id})")
    if len(media.problems) > _MEDIA_SHOWN:
        print(f"  ... and {len(media.problems) - _MEDIA_SHOWN} more")
    return False


def _cmd_report(args: argparse.Namespace) -> int:
    from core.reports import DEFAULT_PLAN, ShiftPlan, write_shift_report

    with _open(args, station=args.station, pick=True) as log:
        # The plan, its time zone and the shift named come from the user's flags.
        with user_errors(ValueError):
            if args.shifts:
                plan = ShiftPlan.parse(args.shifts, args.tz)
            else:
                stored = log.shift_plan()
                plan = (
                    ShiftPlan.from_definitions(stored, args.tz)
                    if stored
                    else ShiftPlan.parse(DEFAULT_PLAN, args.tz)
                )
            shift = plan.resolve(args.shift, log.now())
        report = write_shift_report(log, shift, args.out, verify=not args.no_verify)
    summary = report.summary
    print(
        f"{log.station} {shift.label} ({summary['start']} to {summary['end']}): {summary['parts']} parts, "
        f"{summary['good']} good, {summary['bad']} bad, {summary['not_inspected']} not inspected"
    )
    print(f"parts:   {report.parts_csv}")
    print(f"summary: {report.summary_csv}")
    print(f"chain head: {report.head}  ({summary['chain_verified']})")
    return 1 if report.verification is not None and not report.verification.ok else 0


def _cmd_backup(args: argparse.Namespace) -> int:
    from core.common import paths
    from core.storage.backup import backup

    url = args.db or paths.default_db_url()
    with _open(args) as log:  # migrates an old file first, so the backup is of the current schema
        media_root = log.media_root if args.media else None
    result = backup(url, args.destination, media_root=media_root)
    print(f"database: {result.database}")
    for station, head in sorted(result.heads.items()):
        print(
            f"chain head {station}: {head}  (in {result.heads_file}; check later with verify-log --against)"
        )
    if args.media:
        print(
            f"media: {result.media_files} new files ({result.media_bytes / 1e6:.1f} MB) in {args.destination / 'media'}"
        )
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    from core.storage.retention import RetentionPolicy

    policy = RetentionPolicy(
        good_days=args.good_days,
        not_inspected_days=args.not_inspected_days,
        bad_days=args.bad_days,
        max_media_bytes=None if args.max_media_gb is None else int(args.max_media_gb * _GB),
        min_free_bytes=None if args.min_free_gb is None else int(args.min_free_gb * _GB),
    )
    with _open(args, station=args.station, pick=True) as log:
        actor = None if args.dry_run else login(log, args)
        result = log.prune(policy, actor=actor, dry_run=args.dry_run)
        station = log.station
    verb = "would remove" if result.dry_run else "removed"
    print(
        f"{station}: {verb} {result.decisions} decisions ({result.media_bytes / 1e6:.1f} MB of media"
        + (f", {result.files} files, {result.ranges} pruned ranges recorded" if not result.dry_run else "")
        + ")"
    )
    for verdict, cutoff in result.cutoffs.items():
        if cutoff is not None:
            print(f"  {verdict.value} parts before {cutoff.isoformat(timespec='seconds')}")
    return 0


def _cmd_users(args: argparse.Namespace) -> int:
    with _open(args) as log, user_errors(ValueError, KeyError):  # names given by the user
        if args.action == "add":
            # The first run: no admin can log in yet, so the first admin needs no log-in.
            first = args.role == "admin" and not args.user and log.access.needs_admin()
            actor = None if first else login(log, args)
            password = read_new_password(args, args.name)
            user = log.add_user(
                args.name, role=args.role, display_name=args.display_name, password=password, actor=actor
            )
            print(f"added {user.name} ({user.role.value})" + (" as the first admin" if first else ""))
        elif args.action == "deactivate":
            log.set_user_active(args.name, False, actor=login(log, args))
            print(f"deactivated {args.name}")
        elif args.action == "passwd":
            actor = login(log, args)
            log.access.set_password(args.name, read_new_password(args, args.name), actor=actor)
            print(f"password of {args.name} set")
        else:
            for user in log.users():
                state = "" if user.active else "  (deactivated)"
                state += (
                    "" if user.has_password or user.name == "system" else "  (no password: cannot log in)"
                )
                print(f"{user.name:<20} {user.role.value:<11} {user.display_name or ''}{state}")
            if log.access.needs_admin():
                print("no admin can log in yet: inspector users add NAME --role admin")
    return 0


def _cmd_shifts(args: argparse.Namespace) -> int:
    from core.reports import DEFAULT_PLAN, ShiftPlan

    with _open(args) as log, user_errors(ValueError):  # the plan and time zone typed
        if args.set:
            plan = ShiftPlan.parse(args.set, args.tz)
            log.set_shift_plan(plan.definitions(), actor=login(log, args))
        else:
            stored = log.shift_plan()
            if not stored:
                print(f"no plan stored; reports use {ShiftPlan.parse(DEFAULT_PLAN, args.tz)}")
                return 0
            plan = ShiftPlan.from_definitions(stored, args.tz)
    print(f"shift plan: {plan}")
    return 0


def _cmd_review(args: argparse.Namespace) -> int:
    from core.common.types import Verdict

    # An unknown part (KeyError) or a user without the right (NotAllowedError) is the user's to fix.
    with _open(args) as log, user_errors(KeyError):
        actor = login(log, args)
        review = log.review(args.part_id, verdict=Verdict(args.verdict), actor=actor, comment=args.comment)
    print(f"part {review.part_id}: {review.outcome.value} as {review.verdict.value} by {review.user}")
    return 0


def _cmd_keep(args: argparse.Namespace) -> int:
    with _open(args) as log, user_errors(KeyError):
        log.keep(args.part_id, actor=login(log, args), reason=args.reason)
    print(f"part {args.part_id} is kept")
    return 0
