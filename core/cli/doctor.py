"""``inspector doctor``: one line per check of this machine and the station's settings.

``ok``, ``WARN`` or ``FAIL``, what is wrong and how to fix it; the status is 1 when any check
failed. The checks themselves are ``core.station.doctor`` (the machine) and
``core.station.doctor_station`` (what the station opens).
"""

from __future__ import annotations

import argparse
import sys
from itertools import chain
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "doctor", help="check this machine and the station's settings: one line per check, ok/WARN/FAIL"
    )
    p.add_argument(
        "--config", type=Path, metavar="JSON",
        help="station configuration file, read as inspector run reads it (INSPECTOR_<FIELD> and flags override it)",
    )  # fmt: skip
    p.add_argument(
        "--source", metavar="SPEC", help="check that this source opens (hotfolder:DIR, camera:...)"
    )
    p.add_argument("--model", type=Path, metavar="BUNDLE", help="check that this model bundle loads")
    p.add_argument(
        "--db", metavar="URL", help="check this visual log (default: the SQLite file in the data dir)"
    )
    p.add_argument("--device", help="auto (the default), cpu or cuda: where the model is loaded")
    p.add_argument(
        "--headless",
        action="store_true",
        help="a station without a window: Qt and the display are not checked",
    )
    p.add_argument(
        "--health",
        action="store_true",
        help="a running station's health check (containers, monitoring): a station holds the hot folder, "
        "the log answers, disk, the bundle present; quick, no model load; exit 1 when unhealthy",
    )
    p.set_defaults(handler=_cmd_doctor)


def _settings(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """The settings to check: the station's configuration when one is given (or the flags make
    one), else the flags alone."""
    from core.station.doctor_station import check_config

    flags: dict[str, Any] = {
        "source": args.source,
        "source_options": {},
        "db_url": args.db,
        "media_root": None,
        "model": args.model,
        "backend": "auto",
        "device": args.device or "auto",
    }
    if args.config is None and (args.source is None or args.model is None):
        return [], flags
    check, config = check_config(
        args.config, source=args.source, model=args.model, db_url=args.db, device=args.device
    )
    if config is None:
        return [check], flags
    settings = {
        "source": config.source,
        "source_options": config.source_kwargs(),
        "db_url": config.db_url,
        "media_root": config.media_root,
        "model": config.model,
        "backend": config.backend,
        "device": config.device,
    }
    return [check], settings


def _cmd_doctor(args: argparse.Namespace) -> int:
    from core.station.doctor import Status, exit_status, runtime_checks
    from core.station.doctor_station import station_checks

    if args.health:
        return _cmd_health(args)
    checks = []
    config_checks, settings = _settings(args)
    # Printed as they finish: a camera or a database server may take seconds to answer.
    for check in chain(runtime_checks(gui=not args.headless), config_checks, station_checks(**settings)):
        print(check.line(), flush=True)
        checks.append(check)
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    print(f"doctor: {len(checks)} checks, {failed} failed, {warned} warnings", file=sys.stderr)
    return exit_status(checks)


def _cmd_health(args: argparse.Namespace) -> int:
    """The station's configuration always (file, INSPECTOR_<FIELD>, flags), then the quick checks."""
    from core.station.doctor import exit_status
    from core.station.doctor_health import health_checks
    from core.station.doctor_station import check_config

    check, config = check_config(
        args.config, source=args.source, model=args.model, db_url=args.db, device=args.device
    )
    checks = [check] if config is None else health_checks(config)
    for one in checks:
        print(one.line(), flush=True)
    return exit_status(checks)
