"""``inspector doctor --health``: is the station running, and can it go on?

For a container's ``HEALTHCHECK`` or a monitoring probe, run every half minute beside a working
station, so it is quick: it opens no source and loads no model (the station has them open), and
it takes no lock. The hot folder's lock file is read, not locked, so a check can never make a
starting station find its inbox busy; the log gets the full check's rolled-back write. The full
checks are ``core.station.doctor_station``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from core.station.doctor import Check, Status
from core.station.doctor_station import check_database, check_disk


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by another user
    return True


def check_station_running(inbox: Path) -> Check:
    """A station holds this inbox: its lock file names a live process (read, never locked)."""
    from core.sources.inbox_lock import LOCK_NAME

    name = "station"
    lock_file = inbox / LOCK_NAME
    try:
        holder = lock_file.read_text(encoding="utf-8", errors="replace").split()
    except FileNotFoundError:
        return Check(
            name=name,
            status=Status.FAIL,
            detail=f"no station holds the inbox {inbox}",
            fix="the station is not running or stopped watching: see its log (docker logs, journalctl -u inspector)",
        )
    except OSError as exc:
        return Check(name=name, status=Status.FAIL, detail=f"cannot read {lock_file}: {exc.strerror or exc}")
    try:
        host = holder[holder.index("host") + 1]
        pid = int(holder[holder.index("pid") + 1])
        since = holder[holder.index("since") + 1]
    except (ValueError, IndexError):
        return Check(
            name=name, status=Status.FAIL, detail=f"{lock_file} names no station: {' '.join(holder)!r}"
        )
    if host != socket.gethostname():
        return Check(
            name=name,
            status=Status.WARN,
            detail=f"the inbox {inbox} is held by a station on {host} (pid {pid}); this host cannot see it",
            fix="run the health check where the station runs",
        )
    if not _pid_alive(pid):
        return Check(
            name=name,
            status=Status.FAIL,
            detail=f"the station that held the inbox {inbox} (pid {pid}, since {since}) is gone",
            fix="restart the station; see its log for why it stopped",
        )
    return Check(name=name, status=Status.OK, detail=f"watching {inbox} (pid {pid}, since {since})")


def check_bundle_present(bundle: Path) -> Check:
    """The model bundle is still where the station reads it (the files, not a load)."""
    from core.model.bundle import CARD_FILE

    if (bundle / CARD_FILE).is_file():
        return Check(name="model", status=Status.OK, detail=f"{bundle}: present")
    return Check(
        name="model",
        status=Status.FAIL,
        detail=f"{bundle}: no model card ({CARD_FILE}) there",
        fix="mount or copy the bundle folder again; the station refuses a restart without it",
    )


def health_checks(config: Any) -> list[Check]:
    """The health checks for a station configuration (``StationConfig``)."""
    from core.common.paths import data_home, default_db_url
    from core.sources.base import parse_spec

    checks = []
    kind, target = parse_spec(config.source)
    if kind == "hotfolder":
        checks.append(check_station_running(Path(target)))
    checks.append(check_database(config.db_url or default_db_url()))
    checks.append(check_disk(config.media_root or data_home() / "media"))
    checks.append(check_bundle_present(Path(config.model)))
    return checks
