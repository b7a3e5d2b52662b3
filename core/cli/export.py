"""Command of the retraining side: ``export-labelled``, reviewed parts as a folder ``train`` reads.

Its handler imports the storage and report modules only when it runs, so ``inspector --help``
stays instant.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from core.common.errors import UserError, user_errors


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``export-labelled`` to the ``inspector`` parser."""
    p = sub.add_parser(
        "export-labelled",
        help="write the reviewed parts as good/ and bad/ folders with a manifest, to retrain on",
    )
    p.add_argument("out", type=Path, help="a new or empty folder")
    p.add_argument(
        "--db", metavar="URL", help="SQLAlchemy URL of the visual log (default: SQLite in the data dir)"
    )
    p.add_argument("--media-root", type=Path, help="folder of images and heatmaps (default: in the data dir)")
    p.add_argument("--station", action="append", help="only this station (repeatable; default: all)")
    p.add_argument("--since", type=_moment, help="only parts recorded at or after this local time (ISO 8601)")
    p.add_argument("--until", type=_moment, help="only parts recorded before this local time (ISO 8601)")
    p.set_defaults(handler=_cmd_export_labelled)


def _moment(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is this computer's local time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: write an ISO 8601 time, e.g. 2025-03-14T06:00") from exc
    return (moment if moment.tzinfo is not None else moment.astimezone()).astimezone(UTC)


def _cmd_export_labelled(args: argparse.Namespace) -> int:
    from core.reports.labelled_export import export_labelled
    from core.storage import VisualLog

    with VisualLog(args.db, media_root=args.media_root) as log, user_errors(ValueError):
        if args.station and (unknown := sorted(set(args.station) - set(log.stations()))):
            raise UserError(f"no station {', '.join(unknown)} in the log ({', '.join(log.stations())})")
        result = export_labelled(
            log,
            args.out,
            since=args.since,
            until=args.until,
            stations=tuple(args.station) if args.station else None,
        )
    print(f"{result.parts} reviewed parts written to {result.folder}: {result.good} good, {result.bad} bad")
    for part_id, why in result.skipped:
        print(f"  skipped {part_id}: {why}")
    print(f"manifest: {result.manifest}")
    print(f"retrain:  inspector train {result.folder} --out RUN_FOLDER")
    return 0
