"""Hot folder: the camera vendor's software writes image files into an inbox.

Watch events (watchdog) are hints that make the station react at once; a periodic scan of the
inbox is the source of truth, because events get lost on overflow and never come from network
shares (those are polled only). A file is taken once its size and modification time have stayed
the same for ``settle_s``, or at once when it was renamed into the inbox (the usual way to publish
a finished file). Hidden and temporary names (``.name``, ``*.tmp``, ``*.part``, ...) are writes
still in progress. A file that decodes as truncated gets one more ``truncated_grace_s`` to change
before it is rejected as truncated: a writer that paused for longer than ``settle_s`` is not
judged on half a file.

A background thread lists, settles, reads and decodes files ahead of the station (a few at a
time, ``prefetch``); the station's thread takes them with ``next_part``. After the part's row is
committed the file moves to ``processed/`` (or ``rejected/`` when it could not be inspected) on
the same volume. Nothing is dropped: the backlog waits in the inbox.

The same bytes are inspected once. A file whose content hash is already in the log (``seen``) is
moved without a new row when that decision was an inspection, or was about this very file (a
crash between the commit and the move, or the file announced again). Broken files with equal
bytes under different names (two empty files) are different failures and each gets its row.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.common.fileio import sha256_bytes, sha256_file
from core.common.types import Decision, Part, Verdict
from core.imaging.decode import MAX_FILE_BYTES, DecodeError, TruncatedError, decode_image
from core.sources.base import Backpressure, ContentLookup, SourceStatus
from core.sources.dedupe import duplicate_of

log = logging.getLogger(__name__)

_SKIP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".filepart", ".swp", "~")
# File systems whose change events cannot be trusted (or never arrive): poll only.
_NETWORK_FS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "virtiofs", "vboxsf",
        "ceph", "glusterfs", "fuse.glusterfs", "fuse.sshfs", "fuse.s3fs", "fuse.rclone",
        "fuse.davfs2", "davfs", "fuse.vmhgfs-fuse", "lustre", "gpfs",
    }
)  # fmt: skip


def is_network_path(path: Path) -> bool:
    """Whether ``path`` lies on a network (or VM-shared) file system, where watch events fail."""
    text = str(path)
    if text.startswith(("\\\\", "//")):  # a UNC path
        return True
    try:
        resolved = str(Path(path).resolve())
        best, fs = "", ""
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) < 3:
                    continue
                mount = fields[1].replace("\\040", " ")
                inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, fs = mount, fields[2]
    except OSError:  # not Linux
        return False
    return fs in _NETWORK_FS


def display_path(path: Path) -> str:
    """The path as text that any database stores (undecodable bytes in names become U+FFFD)."""
    return os.fsencode(path).decode("utf-8", errors="replace")


@dataclass(slots=True)
class _Candidate:
    key: tuple[int, int]  # (size, mtime_ns)
    stable_since: float  # monotonic time when ``key`` was first seen
    complete: bool = False  # renamed into the inbox: no need to wait
    grace_until: float | None = None  # decoded as truncated: look again then


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A file read and decoded by the background thread, waiting for the station."""

    path: Path
    key: tuple[int, int]
    source_ref: str
    data: bytes | None
    content_hash: str | None
    image: np.ndarray | None
    error: str | None


class HotFolderSource:
    """A watched inbox of image files. See the module docstring for the rules.

    Args:
        inbox: The folder the camera software writes into (created when missing).
        settle_s: How long size and modification time must stay unchanged.
        scan_interval_s: Time between full listings of the inbox (the source of truth).
        watch: Use watch events as hints: True, False (poll only), None (poll on network shares).
        seen: Earlier decisions with a content hash (see ``core.sources.dedupe``); None checks
            only the parts of this session.
        processed_dir, rejected_dir: Where files go after their row is committed.
        prefetch: Files read and decoded ahead of the station.
        truncated_grace_s: Extra wait before a file that decodes as truncated is rejected.
        max_bytes: Files larger than this are refused without reading them.
    """

    backpressure = Backpressure.WAIT

    def __init__(
        self,
        inbox: Path,
        *,
        settle_s: float = 0.5,
        scan_interval_s: float = 0.25,
        watch: bool | None = None,
        seen: ContentLookup | None = None,
        processed_dir: Path | None = None,
        rejected_dir: Path | None = None,
        prefetch: int = 4,
        truncated_grace_s: float = 1.0,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.inbox = Path(inbox)
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.processed_dir = Path(processed_dir) if processed_dir else self.inbox / "processed"
        self.rejected_dir = Path(rejected_dir) if rejected_dir else self.inbox / "rejected"
        self.settle_s = float(settle_s)
        self.scan_interval_s = float(scan_interval_s)
        self.truncated_grace_s = float(truncated_grace_s)
        self.max_bytes = int(max_bytes)
        self._seen = seen
        if watch is None:
            watch = not is_network_path(self.inbox)
        self.description = f"hot folder {display_path(self.inbox)}"

        # Shared between the background thread and the station's thread.
        self._loaded: queue.Queue[_Loaded] = queue.Queue(maxsize=max(1, prefetch))
        self._returns: deque[tuple[str, Path, tuple[int, int] | None]] = deque()  # (done|retry, ...)
        self._hints: deque[tuple[str, Path]] = deque()  # watch events: (moved|changed, path)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._online = True
        self._problem = ""
        self._since = datetime.now(UTC)
        self._files_seen = 0
        self._backlog = 0

        # The station's thread only.
        self._in_flight: dict[str, _Loaded] = {}  # part_id -> file
        self._in_flight_hashes: dict[str, int] = {}
        self._deferred: deque[_Loaded] = deque()  # same bytes as a part in flight: wait for it
        self._parts = 0
        self._duplicates = 0
        self._stopped = False
        self._closed = False

        # The background thread only.
        self._known: dict[Path, _Candidate] = {}
        self._ready: deque[tuple[Path, _Candidate]] = deque()
        self._taken: dict[Path, tuple[int, int]] = {}  # loaded or in flight
        self._finished: dict[Path, tuple[int, int]] = {}  # done, but the move failed: skip it

        self._observer: Any = self._start_observer() if watch else None
        self.watching = self._observer is not None
        self._thread = threading.Thread(target=self._run, name=f"hotfolder-{self.inbox.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the station's thread

    def next_part(self, timeout_s: float) -> Part | None:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            item = self._next_loaded(deadline)
            if item is None:
                return None
            if item.content_hash is not None:
                if item.content_hash in self._in_flight_hashes:
                    self._deferred.append(item)  # decided after the part in flight
                    continue
                if self._is_duplicate(item):
                    continue
            part = Part(
                source_ref=item.source_ref,
                arrived_at=datetime.now(UTC),
                image=item.image,
                content_hash=item.content_hash,
                encoded=item.data if item.image is not None else None,
                error=item.error,
            )
            self._in_flight[part.part_id] = item
            if item.content_hash is not None:
                self._in_flight_hashes[item.content_hash] = (
                    self._in_flight_hashes.get(item.content_hash, 0) + 1
                )
            self._parts += 1
            return part

    def acknowledge(self, part: Part, decision: Decision) -> None:
        item = self._forget(part)
        if item is None:
            return
        target = self.rejected_dir if decision.verdict is Verdict.NOT_INSPECTED else self.processed_dir
        self._move(item, target, tag=part.part_id)

    def release(self, part: Part) -> None:
        item = self._forget(part)
        if item is not None:
            self._returns.append(("retry", item.path, item.key))
            self._wake.set()

    def status(self) -> SourceStatus:
        with self._lock:
            online, problem, since = self._online, self._problem, self._since
            frames, backlog = self._files_seen, self._backlog
        mode = "watch events + rescan" if self.watching else "polling"
        message = f"watching {display_path(self.inbox)} ({mode})" if online else problem
        return SourceStatus(
            online=online,
            message=message,
            since=since,
            frames=frames,
            parts=self._parts,
            backlog=backlog + self._loaded.qsize() + len(self._deferred),
        )

    @property
    def duplicates(self) -> int:
        """Files moved without a new row because their bytes were already decided."""
        return self._duplicates

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        # Files read ahead but not handed out stay in the inbox for the next run.
        while True:
            try:
                self._loaded.get_nowait()
            except queue.Empty:
                break
        self._deferred.clear()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop()
        self._in_flight.clear()
        self._in_flight_hashes.clear()

    def __enter__(self) -> HotFolderSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _next_loaded(self, deadline: float) -> _Loaded | None:
        for _ in range(len(self._deferred)):
            item = self._deferred.popleft()
            if item.content_hash not in self._in_flight_hashes:
                return item
            self._deferred.append(item)
        if self._stopped:
            return None
        try:
            item = self._loaded.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        self._wake.set()  # room to read the next file ahead
        return item

    def _is_duplicate(self, item: _Loaded) -> bool:
        if self._seen is None or item.content_hash is None:
            return False
        try:
            prior = duplicate_of(self._seen(item.content_hash), item.source_ref)
        except Exception:
            self._deferred.appendleft(item)  # the log is unreachable: keep the file for later
            raise
        if prior is None:
            return False
        self._duplicates += 1
        log.info(
            "%s: same bytes as part %s (%s), already %s: moved without a new row",
            item.source_ref, prior.part_id, prior.source_ref, prior.verdict.value,
        )  # fmt: skip
        target = self.rejected_dir if prior.verdict is Verdict.NOT_INSPECTED else self.processed_dir
        self._move(item, target, tag=prior.part_id)
        return True

    def _forget(self, part: Part) -> _Loaded | None:
        item = self._in_flight.pop(part.part_id, None)
        if item is not None and item.content_hash is not None:
            left = self._in_flight_hashes.get(item.content_hash, 0) - 1
            if left > 0:
                self._in_flight_hashes[item.content_hash] = left
            else:
                self._in_flight_hashes.pop(item.content_hash, None)
        return item

    def _move(self, item: _Loaded, target_dir: Path, *, tag: str) -> None:
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / item.path.name
            if target.exists():
                target = target_dir / f"{item.path.stem}.{tag}{item.path.suffix}"
            os.replace(item.path, target)
        except FileNotFoundError:
            pass  # removed by someone else after it was read: nothing left to move
        except OSError as exc:
            # The row is committed; the file stays, and this run does not take it again.
            log.error("cannot move %s to %s: %s", item.source_ref, target_dir, exc)
            self._returns.append(("stuck", item.path, item.key))
            self._wake.set()
            return
        self._returns.append(("done", item.path, None))
        self._wake.set()

    # ------------------------------------------------------------------ watch events

    def _start_observer(self) -> Any:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            log.warning("watchdog is not installed: polling %s", self.inbox)
            return None
        hints, wake, inbox = self._hints, self._wake, self.inbox

        class _Hints(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory:
                    return
                if event.event_type == "moved":
                    dest = Path(os.fsdecode(event.dest_path))
                    if dest.parent == inbox:
                        hints.append(("moved", dest))
                elif event.event_type in ("created", "modified", "closed"):
                    hints.append(("changed", Path(os.fsdecode(event.src_path))))
                else:
                    return
                wake.set()

        _quiet_watchdog_stop()
        observer = Observer()
        try:
            observer.schedule(_Hints(), str(self.inbox), recursive=False)
            observer.start()
        except OSError as exc:  # e.g. the inotify watch limit: the rescan still finds every file
            log.warning("watch events unavailable for %s (%s): polling", self.inbox, exc)
            return None
        return observer

    # ------------------------------------------------------------------ the background thread

    def _run(self) -> None:
        next_scan = 0.0
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                now = time.monotonic()
                self._take_returns()
                self._take_hints(now)
                if now >= next_scan:
                    started = time.monotonic()
                    self._scan(now)
                    # A huge backlog makes listing slow: never spend more than a tenth of a core.
                    next_scan = now + max(self.scan_interval_s, 10 * (time.monotonic() - started))
                self._settle(now)
                self._load_ready()
                # The station's thread wakes this one when it takes a part (room to read ahead).
                self._wake.wait(min(max(0.0, next_scan - time.monotonic()), self._next_check_in(now)))
        except Exception:  # a bug here must not leave the station waiting forever in silence
            log.exception("hot folder thread failed")
            self._set_online(False, f"hot folder {display_path(self.inbox)} failed (see the log)")

    def _next_check_in(self, now: float) -> float:
        soonest = self.scan_interval_s
        for candidate in self._known.values():
            due = (candidate.grace_until or candidate.stable_since + self.settle_s) - now
            soonest = min(soonest, max(0.005, due))
        return soonest

    def _take_returns(self) -> None:
        while self._returns:
            what, path, key = self._returns.popleft()
            self._taken.pop(path, None)
            if what == "retry":
                self._known.pop(path, None)  # found again by the next scan and settled anew
            elif what == "stuck" and key is not None:
                self._finished[path] = key

    def _take_hints(self, now: float) -> None:
        while self._hints:
            kind, path = self._hints.popleft()
            if path.parent != self.inbox or _skipped(path.name) or path in self._taken:
                continue
            key = _key_of(path)
            if key is None or self._finished.get(path) == key:
                continue
            known = self._known.get(path)
            if kind == "moved":  # renamed into place: complete by convention
                self._known[path] = _Candidate(key=key, stable_since=now, complete=True)
            elif known is None or known.key != key:
                self._known[path] = _Candidate(key=key, stable_since=now)

    def _scan(self, now: float) -> None:
        try:
            with os.scandir(self.inbox) as it:
                entries = [(e.name, e.path) for e in it if _is_file(e)]
        except OSError as exc:
            # Unreachable for now (a network share): keep what is known and try again.
            self._set_online(False, f"inbox {display_path(self.inbox)} unreachable: {exc.strerror or exc}")
            return
        self._set_online(True, "")
        present: set[Path] = set()
        for name, full in entries:
            if _skipped(name):
                continue
            path = Path(full)
            present.add(path)
            if path in self._taken or path in self._known:
                continue
            key = _key_of(path)
            if key is None:
                continue
            if self._finished.get(path) == key:
                continue  # decided already; its move failed
            self._finished.pop(path, None)
            self._known[path] = _Candidate(key=key, stable_since=now)
        for gone in [p for p in self._known if p not in present]:
            del self._known[gone]
        for gone in [p for p in self._finished if p not in present]:
            del self._finished[gone]
        with self._lock:
            self._backlog = len(self._known) + len(self._ready)

    def _settle(self, now: float) -> None:
        newly: list[Path] = []
        for path, candidate in list(self._known.items()):
            key = _key_of(path)
            if key is None:
                del self._known[path]
                continue
            if key != candidate.key:
                self._known[path] = _Candidate(key=key, stable_since=now)  # still being written
                continue
            if candidate.grace_until is not None:
                if now >= candidate.grace_until:
                    newly.append(path)  # unchanged through the grace: truncated it is
                continue
            if candidate.complete or now - candidate.stable_since >= self.settle_s:
                newly.append(path)
        for path in sorted(newly, key=lambda p: p.name):
            candidate = self._known.pop(path)
            self._ready.append((path, candidate))
            self._taken[path] = candidate.key
            with self._lock:
                self._files_seen += 1

    def _load_ready(self) -> None:
        while self._ready and not self._loaded.full() and not self._stopping.is_set():
            path, candidate = self._ready.popleft()
            item = self._load(path, candidate)
            if item is None:
                self._taken.pop(path, None)
                continue
            self._loaded.put(item)

    def _load(self, path: Path, candidate: _Candidate) -> _Loaded | None:
        source_ref = display_path(path)
        key = _key_of(path)
        if key is None:
            return None  # gone since it settled
        if key[0] > self.max_bytes:
            try:
                digest = sha256_file(path)  # streamed: the file is never held in memory
            except OSError:
                digest = None
            refused = f"refused: {key[0]:,} bytes exceeds the file size limit of {self.max_bytes:,}"
            return _Loaded(path, key, source_ref, None, digest, None, refused)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return _Loaded(
                path, key, source_ref, None, None, None, f"cannot read file: {exc.strerror or exc}"
            )
        if _key_of(path) != key:  # written to while we read it
            self._known[path] = _Candidate(key=_key_of(path) or key, stable_since=time.monotonic())
            return None
        digest = sha256_bytes(data)
        image: np.ndarray | None = None
        error: str | None = None
        try:
            image = decode_image(data)
        except TruncatedError as exc:
            if not candidate.complete and candidate.grace_until is None and self.truncated_grace_s > 0:
                # Perhaps a writer that paused: look once more before calling it truncated.
                self._known[path] = _Candidate(
                    key=key, stable_since=time.monotonic(),
                    grace_until=time.monotonic() + self.truncated_grace_s,
                )  # fmt: skip
                return None
            error = str(exc)
        except DecodeError as exc:
            error = str(exc)
        return _Loaded(path, key, source_ref, data, digest, image, error)

    def _set_online(self, online: bool, problem: str) -> None:
        with self._lock:
            if online != self._online or problem != self._problem:
                self._online, self._problem = online, problem
                self._since = datetime.now(UTC)
                if online:
                    log.info("inbox %s reachable again", self.inbox)
                else:
                    log.warning("%s", problem)


class _StopRaceFilter(logging.Filter):
    """watchdog logs an error when an event arrives while its emitter stops (our own moves at
    close). Nothing is lost: the rescan is the source of truth. Drop that one message."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


_STOP_RACE_FILTER = _StopRaceFilter()


def _quiet_watchdog_stop() -> None:
    logger = logging.getLogger("watchdog.observers.inotify")
    if _STOP_RACE_FILTER not in logger.filters:
        logger.addFilter(_STOP_RACE_FILTER)


def _skipped(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(_SKIP_SUFFIXES)


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _key_of(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns
