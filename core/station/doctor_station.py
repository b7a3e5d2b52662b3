"""``inspector doctor``, the station's part: what ``inspector run`` would open, checked first.

The source, the visual log, the free disk for the media folder and the model bundle, from the
station's configuration (``StationConfig``) or the flags. The checks look, they do not change: a
database is written to inside a transaction that is rolled back, a SQLite file that does not
exist yet is not created, a hot folder gets a probe file that is removed at once, and its inbox
lock is taken and let go (it tells whether a station holds it). The machine's checks and the
``Check`` type are ``core.station.doctor``.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.station.doctor import Check, Status, one_line

GIB = 1 << 30
DISK_WARN_BYTES = 5 * GIB
DISK_FAIL_BYTES = 1 * GIB
SOURCE_OPEN_TIMEOUT_S = 5.0
DB_CONNECT_TIMEOUT_S = 5


def check_config(path: Path | None, **overrides: Any) -> tuple[Check, Any]:
    """The station configuration as ``inspector run`` reads it (file, environment, flags).

    Returns:
        The check, and the ``StationConfig`` (None when it is refused).
    """
    from core.common.errors import UserError
    from core.station.config import StationConfig

    shown = str(path) if path is not None else "flags and INSPECTOR_<FIELD> variables"
    try:
        config = StationConfig.load(path, **overrides)
    except UserError as exc:
        return Check(name="config", status=Status.FAIL, detail=one_line(exc), fix="fix the file"), None
    except ValueError as exc:  # pydantic's ValidationError
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'settings'}: {e['msg']}"
            for e in getattr(exc, "errors", lambda: [])()
        )
        return (
            Check(
                name="config",
                status=Status.FAIL,
                detail=f"{shown}: {problems or one_line(exc)}",
                fix="see the fields of StationConfig (README: station settings)",
            ),
            None,
        )
    return Check(name="config", status=Status.OK, detail=f"{shown}: valid"), config


def _writable_folder(folder: Path) -> str | None:
    """Why ``folder`` cannot take files, or None: a probe file is written and removed."""
    probe = folder / f".inspector-doctor-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_hot_folder(inbox: Path, options: Mapping[str, Any] | None = None) -> Check:
    """The inbox exists, is a folder the station may write to (files move out of it), and no
    other station holds it."""
    from core.sources.inbox_lock import InboxLock, InboxLockedError

    name = "source"
    options = options or {}
    if not inbox.exists():
        return Check(
            name=name,
            status=Status.FAIL,
            detail=f"hot folder {inbox} does not exist",
            fix=f"check the path and that its share is mounted, or create it: mkdir -p {inbox}",
        )
    if not inbox.is_dir():
        return Check(
            name=name, status=Status.FAIL, detail=f"hot folder {inbox} is not a folder", fix="name a folder"
        )
    problem = _writable_folder(inbox)
    if problem:
        return Check(
            name=name,
            status=Status.FAIL,
            detail=f"hot folder {inbox} is not writable ({problem}): inspected files cannot move out of it",
            fix=f"give the station's user write access (chown/chmod {inbox}), or mount the share read-write",
        )
    for key, default in (("processed_dir", "processed"), ("rejected_dir", "rejected")):
        folder = Path(options.get(key) or inbox / default)
        if folder.is_dir() and (problem := _writable_folder(folder)):
            return Check(
                name=name,
                status=Status.FAIL,
                detail=f"{key.replace('_dir', '')} folder {folder} is not writable ({problem})",
                fix=f"give the station's user write access to {folder}",
            )
    lock = InboxLock(inbox)
    try:
        lock.acquire()
    except InboxLockedError as exc:
        return Check(name=name, status=Status.WARN, detail=one_line(exc), fix="stop that station first")
    except OSError as exc:
        return Check(name=name, status=Status.FAIL, detail=f"cannot lock the inbox: {one_line(exc)}")
    finally:
        lock.release()
    waiting = sum(1 for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))
    return Check(name=name, status=Status.OK, detail=f"hot folder {inbox}: writable, {waiting} files waiting")


def check_source(
    spec: str, options: Mapping[str, Any] | None = None, *, timeout_s: float = SOURCE_OPEN_TIMEOUT_S
) -> Check:
    """The source opens: a hot folder (``check_hot_folder``), or a camera or video that delivers."""
    from core.sources import open_source
    from core.sources.base import parse_spec

    kind, target = parse_spec(spec)
    if kind == "hotfolder":
        return check_hot_folder(Path(target), options)
    try:
        source = open_source(spec, **dict(options or {}))
    except Exception as exc:  # SourceError, ValueError, a missing driver package
        return Check(
            name="source",
            status=Status.FAIL,
            detail=f"{spec}: cannot open: {one_line(exc)}",
            fix="check the spec (hotfolder:DIR, camera:INDEX_OR_URL, video:FILE, genicam:CTI), "
            "the cable or address, and try inspector probe",
        )
    try:
        deadline = time.monotonic() + timeout_s
        status = source.status()
        while not status.online and time.monotonic() < deadline:
            time.sleep(0.1)
            status = source.status()
    finally:
        source.close()
    if status.online:
        return Check(name="source", status=Status.OK, detail=f"{source.description}: {status.message}")
    return Check(
        name="source",
        status=Status.FAIL,
        detail=f"{source.description} did not come online in {timeout_s:g} s: {status.message}",
        fix="check the cable, address and credentials, and try inspector probe " + spec,
    )


def _probe_url(url: str) -> str:
    """The URL with a connect time-out, so an unreachable server fails in seconds."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(DB_CONNECT_TIMEOUT_S)})
    return parsed.render_as_string(hide_password=False)


def check_database(url: str) -> Check:
    """The visual log: reachable, writable (in a transaction rolled back), its schema current."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from core.storage.backup import sqlite_file
    from core.storage.db import make_engine
    from core.storage.migrate import HEAD_REVISION, current_revision

    name = "database"
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception as exc:
        return Check(name=name, status=Status.FAIL, detail=f"not a database URL: {one_line(exc)}")
    path = sqlite_file(url)
    if path is not None and not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        problem = "no existing parent folder" if parent is None else _writable_folder(parent)
        if problem:
            return Check(
                name=name,
                status=Status.FAIL,
                detail=f"{shown}: the file cannot be created in {parent} ({problem})",
                fix="give the station's user write access there, or choose another --db",
            )
        return Check(name=name, status=Status.OK, detail=f"{shown}: not created yet; the station creates it")
    try:
        engine = make_engine(_probe_url(url))
    except ImportError as exc:
        return Check(
            name=name,
            status=Status.FAIL,
            detail=f"{shown}: its driver is not installed ({exc.name or exc})",
            fix="pip install 'inspector[postgres]'" if "postgres" in url else "install the database driver",
        )
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
        with engine.connect() as connection:
            transaction = connection.begin()
            try:  # a write that leaves nothing behind
                connection.execute(text("CREATE TABLE inspector_doctor_probe (id INTEGER)"))
            finally:
                transaction.rollback()
    except SQLAlchemyError as exc:
        return Check(
            name=name,
            status=Status.FAIL,
            detail=f"{shown}: {one_line(exc)}",
            fix="check that the server runs and is reachable, the user, password and database name, "
            "and that the user may write (SQLite: the file and its folder writable)",
        )
    finally:
        engine.dispose()
    if revision is None:
        return Check(name=name, status=Status.OK, detail=f"{shown}: empty; the station creates its tables")
    if revision == HEAD_REVISION:
        return Check(name=name, status=Status.OK, detail=f"{shown}: schema at revision {revision} (current)")
    if revision.isdigit() and int(revision) > int(HEAD_REVISION):
        return Check(
            name=name,
            status=Status.FAIL,
            detail=f"{shown}: schema at revision {revision}, newer than this station knows ({HEAD_REVISION})",
            fix="update the station software",
        )
    return Check(
        name=name,
        status=Status.WARN,
        detail=f"{shown}: schema at revision {revision}; the station migrates it to {HEAD_REVISION} when it "
        "starts (a SQLite file is backed up first)",
        fix="nothing to do; start one station first when several share this database",
    )


def disk_status(free_bytes: int) -> Status:
    """FAIL under 1 GiB free, WARN under 5 GiB, else ok."""
    if free_bytes < DISK_FAIL_BYTES:
        return Status.FAIL
    return Status.WARN if free_bytes < DISK_WARN_BYTES else Status.OK


def check_disk(media_root: Path) -> Check:
    """Free space where the pictures and heatmaps are stored."""
    existing = next((p for p in (media_root, *media_root.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    status = disk_status(free)
    detail = f"{free / GIB:.1f} GiB free for {media_root}"
    if status is Status.OK:
        return Check(name="disk", status=status, detail=detail)
    floor = DISK_FAIL_BYTES if status is Status.FAIL else DISK_WARN_BYTES
    return Check(
        name="disk",
        status=status,
        detail=f"{detail} (under {floor // GIB} GiB)",
        fix="free space (inspector prune, inspector backup then prune) or move the media folder to a larger disk",
    )


def check_model(bundle: Path, *, backend: str = "auto", device: str = "auto") -> Check:
    """The bundle loads as the station would load it (card validated, hashes checked)."""
    from core.inference.backends import make_backend
    from core.model.bundle import BundleError, read_card

    name = "model"
    try:
        card = read_card(bundle)  # first: a wrong path is named as one, with or without torch
        runner = make_backend(bundle, backend, device, threads=1)
    except BundleError as exc:
        return Check(
            name=name,
            status=Status.FAIL,
            detail=one_line(exc),
            fix="check the path; copy the whole bundle folder again (or export it again)",
        )
    except Exception as exc:  # no backend to run it, a CUDA request without a GPU
        return Check(
            name=name,
            status=Status.FAIL,
            detail=f"{bundle}: cannot run it: {one_line(exc)}",
            fix=f"export it on a machine with PyTorch (inspector export {bundle} --onnx), or install "
            "'inspector[train]'",
        )
    try:
        return Check(
            name=name,
            status=Status.OK,
            detail=f"{card.name} ({card.architecture}, {card.input_size} px) on {runner.name}/{runner.device}, "
            f"model hash {runner.model_hash[:12]}, threshold {card.threshold:.3f}",
        )
    finally:
        runner.close()


def station_checks(
    *,
    source: str | None = None,
    source_options: Mapping[str, Any] | None = None,
    db_url: str | None = None,
    media_root: Path | None = None,
    model: Path | None = None,
    backend: str = "auto",
    device: str = "auto",
) -> list[Check]:
    """The checks of what the station would open; the log and media default to the data dir's."""
    from core.common.paths import data_home, default_db_url

    checks = []
    if source is not None:
        checks.append(check_source(source, source_options))
    checks.append(check_database(db_url or default_db_url()))
    checks.append(check_disk(media_root or data_home() / "media"))
    if model is not None:
        checks.append(check_model(model, backend=backend, device=device))
    return checks
