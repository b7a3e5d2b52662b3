"""Hot folder: the camera vendor's software writes image files into an inbox.

Watch events (watchdog) are hints that make the station react at once; a periodic scan of the
inbox is the source of truth, because events get lost on overflow and never come from network
shares (those are polled only). A file is taken once its size and modification time have stayed
the same for ``settle_s``, or at once when it was renamed into the inbox (the usual way to publish
a finished file). Hidden and temporary names (``.name``, ``*.tmp``, ``*.part``, ...) are writes
still in progress. A file that decodes as truncated (or is empty) gets ``truncated_grace_s`` to
change before it is rejected, and again after every change: a writer that paused for longer than
``settle_s`` is not judged on half a file. A rejected unreadable file that grows afterwards in
``rejected/`` (its writer only paused) comes back and is inspected (``core.sources.hotfolder_rejected``).

One station per inbox: the inbox is locked while the source is open (``core.sources.inbox_lock``);
a second station is refused with ``InboxLockedError`` naming the holder.

A background thread lists, settles, reads and decodes files ahead of the station (a few at a
time, ``prefetch``); the station's thread takes them with ``next_part``. After the part's row is
committed the file moves to ``processed/`` (or ``rejected/`` when it could not be inspected) on
the same volume. Nothing is dropped: the backlog waits in the inbox. A file that cannot be moved
(a read-only inbox) raises a warning (``SourceStatus.warning``) until a move succeeds, and is
tried again now and then.

Every file gets one row (see ``core.sources.dedupe``): the same bytes under another name are a
not-inspected row "duplicate of <part> (<name>)", and ``duplicate_alarm_after`` of them in a row
raise a warning (a camera resending a frozen frame); the same file again (a crash between the
commit and the move) is only moved. Entries that are not regular files (a dangling link, a FIFO)
get a not-inspected row saying what they are and are never opened.
"""

from __future__ import annotations

import errno
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
from core.sources.dedupe import Repeat, duplicate_reason, repeat_of
from core.sources.hotfolder_files import (
    Key,
    display_path,
    entry_kind,
    is_network_path,
    key_of,
    lkey_of,
    read_regular,
    skipped,
    special_kind,
)
from core.sources.hotfolder_rejected import RegrowWatch, StuckMoves, move_out
from core.sources.hotfolder_watch import start_observer
from core.sources.inbox_lock import InboxLock

__all__ = ["HotFolderSource", "display_path", "is_network_path"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Candidate:
    key: Key  # (size, mtime_ns)
    stable_since: float  # monotonic time when ``key`` was first seen
    complete: bool = False  # renamed into the inbox: no need to wait
    grace_until: float | None = None  # decoded as truncated: look again then
    special: str | None = None  # not a regular file: what it is


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A file read and decoded by the background thread, waiting for the station."""

    path: Path
    key: Key
    source_ref: str
    data: bytes | None
    content_hash: str | None
    image: np.ndarray | None
    error: str | None
    unreadable: bool = False  # a decode failure: watched in rejected/ in case it grows


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
        truncated_grace_s: Wait before a file that decodes as truncated (or is empty) is
            rejected; starts again whenever the file changes.
        max_bytes: Files larger than this are refused without reading them.
        rejected_watch_s: How long a file rejected as unreadable is watched for growth (0: off).
        duplicate_alarm_after: This many duplicate files in a row raise a warning (0: never).

    Raises:
        InboxLockedError: Another station holds the inbox.
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
        truncated_grace_s: float = 5.0,
        max_bytes: int = MAX_FILE_BYTES,
        rejected_watch_s: float = 600.0,
        duplicate_alarm_after: int = 3,
    ) -> None:
        self.inbox = Path(inbox)
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.processed_dir = Path(processed_dir) if processed_dir else self.inbox / "processed"
        self.rejected_dir = Path(rejected_dir) if rejected_dir else self.inbox / "rejected"
        self.settle_s = float(settle_s)
        self.scan_interval_s = float(scan_interval_s)
        self.truncated_grace_s = float(truncated_grace_s)
        self.max_bytes = int(max_bytes)
        self.duplicate_alarm_after = int(duplicate_alarm_after)
        self.rejected_watch_s = float(rejected_watch_s)
        self._seen = seen
        if watch is None:
            watch = not is_network_path(self.inbox)
        self.description = f"hot folder {display_path(self.inbox)}"
        self._inbox_lock = InboxLock(self.inbox)
        try:
            self._inbox_lock.acquire()
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            # A read-only inbox cannot hold a lock file; its files cannot be moved either, which
            # the station reports as a warning. Refusing to start would only hide that.
            log.warning("inbox %s is not writable (%s): not locked against a second station", inbox, exc)

        # Shared between the background thread and the station's thread.
        self._loaded: queue.Queue[_Loaded] = queue.Queue(maxsize=max(1, prefetch))
        # (done|retry|stuck|rejected, path, key, target dir or rejected file, tag)
        self._returns: deque[tuple[str, Path, Key | None, Path | None, str]] = deque()
        self._hints: deque[tuple[str, Path]] = deque()  # watch events: (moved|changed, path)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._online = True
        self._problem = ""
        self._move_problem = ""  # the last move failed: why (a warning until one succeeds)
        self._since = datetime.now(UTC)
        self._files_seen = 0
        self._backlog = 0

        # The station's thread only.
        self._in_flight: dict[str, _Loaded] = {}  # part_id -> file
        self._in_flight_hashes: dict[str, int] = {}
        self._deferred: deque[_Loaded] = deque()  # same bytes as a part in flight: wait for it
        self._parts = 0
        self._duplicates = 0
        self._duplicate_run = 0  # duplicates handed out in a row
        self._duplicate_warning = ""
        self._duplicate_warning_ends = False  # a new part came: clear after the next status
        self._first_duplicate = ""  # the file that began the run, and whose duplicate it is
        self._stopped = False
        self._closed = False

        # The background thread only.
        self._known: dict[Path, _Candidate] = {}
        self._ready: deque[tuple[Path, _Candidate]] = deque()
        self._taken: dict[Path, Key] = {}  # loaded or in flight
        self._stuck = StuckMoves(retry_s=max(1.0, 10 * self.scan_interval_s))
        self._regrow = RegrowWatch(self.inbox, watch_s=float(rejected_watch_s), settle_s=self.settle_s)

        self._observer: Any = start_observer(self.inbox, self._hints, self._wake) if watch else None
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
            error, image, duplicate = item.error, item.image, False
            if item.content_hash is not None:
                if item.content_hash in self._in_flight_hashes:
                    self._deferred.append(item)  # decided after the part in flight
                    continue
                repeat = self._repeated(item)
                if repeat is not None and repeat.same_file:
                    continue  # this very file was decided already: moved, no second row
                if repeat is not None:
                    error, image, duplicate = duplicate_reason(repeat.prior), None, True
            if duplicate or image is not None:  # broken files neither count nor end a run
                self._count_duplicate_run(item, error if duplicate else None)
            part = Part(
                source_ref=item.source_ref,
                arrived_at=datetime.now(UTC),
                image=image,
                content_hash=item.content_hash,
                encoded=item.data if image is not None else None,
                error=error,
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
        rejected = decision.verdict is Verdict.NOT_INSPECTED
        target = self._move(item, self.rejected_dir if rejected else self.processed_dir, tag=part.part_id)
        if target is not None and rejected and item.unreadable and part.error == item.error:
            # Watched at once (and so written down) from here: a station killed right after the
            # move must leave the file on the list the next station resumes.
            self._regrow.add(target, item.path.name, item.key, time.monotonic())

    def release(self, part: Part) -> None:
        item = self._forget(part)
        if item is not None:
            self._returns.append(("retry", item.path, item.key, None, ""))
            self._wake.set()

    def status(self) -> SourceStatus:
        with self._lock:
            online, problem, since = self._online, self._problem, self._since
            frames, backlog, move_problem = self._files_seen, self._backlog, self._move_problem
        mode = "watch events + rescan" if self.watching else "polling"
        message = f"watching {display_path(self.inbox)} ({mode})" if online else problem
        warning = "; ".join(w for w in (self._duplicate_warning, move_problem) if w)
        if self._duplicate_warning_ends:
            self._duplicate_warning, self._duplicate_warning_ends = "", False
        return SourceStatus(
            online=online,
            message=message,
            since=since,
            frames=frames,
            parts=self._parts,
            backlog=backlog + self._loaded.qsize() + len(self._deferred),
            warning=warning,
        )

    @property
    def duplicates(self) -> int:
        """Files whose bytes were decided already: "duplicate of" rows and files moved without one."""
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
        self._inbox_lock.release()

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

    def _repeated(self, item: _Loaded) -> Repeat | None:
        """Whether the file's bytes were decided already (see ``core.sources.dedupe``); this
        very file decided already is moved here, without a row."""
        if self._seen is None or item.content_hash is None:
            return None
        try:
            repeat = repeat_of(self._seen(item.content_hash), item.source_ref)
        except Exception:
            self._deferred.appendleft(item)  # the log is unreachable: keep the file for later
            raise
        if repeat is None:
            return None
        self._duplicates += 1
        prior = repeat.prior
        if not repeat.same_file:
            return repeat
        log.info(
            "%s: decided already as part %s (%s): moved without a second row",
            item.source_ref, prior.part_id, prior.verdict.value,
        )  # fmt: skip
        target = self.rejected_dir if prior.verdict is Verdict.NOT_INSPECTED else self.processed_dir
        self._move(item, target, tag=prior.part_id)
        return repeat

    def _count_duplicate_run(self, item: _Loaded, reason: str | None) -> None:
        """A run of duplicates (a camera resending a frozen frame) is a warning until a new part.

        ``reason`` is the duplicate's reason, None for a part that is no duplicate."""
        if reason is None:
            self._duplicate_run = 0
            # Shown by one more ``status`` before it clears: a run that ended in the same batch
            # is still an alarm the operator sees (and its clearing).
            self._duplicate_warning_ends = bool(self._duplicate_warning)
            return
        self._duplicate_warning_ends = False
        self._duplicate_run += 1
        if self._duplicate_run == 1:
            self._first_duplicate = f"{Path(item.source_ref).name}, a {reason}"
        n = self.duplicate_alarm_after
        if n > 0 and self._duplicate_run >= n and not self._duplicate_warning:
            self._duplicate_warning = (
                f"{n} or more files in a row repeat a part already inspected, from "
                f"{self._first_duplicate}; is the camera resending a frozen frame?"
            )
            log.warning("%s", self._duplicate_warning)

    def _forget(self, part: Part) -> _Loaded | None:
        item = self._in_flight.pop(part.part_id, None)
        if item is not None and item.content_hash is not None:
            left = self._in_flight_hashes.get(item.content_hash, 0) - 1
            if left > 0:
                self._in_flight_hashes[item.content_hash] = left
            else:
                self._in_flight_hashes.pop(item.content_hash, None)
        return item

    def _move(self, item: _Loaded, target_dir: Path, *, tag: str) -> Path | None:
        """Move a decided file out of the inbox; where it went, or None."""
        try:
            target = move_out(item.path, target_dir, tag)
        except FileNotFoundError:
            target = None  # removed by someone else after it was read: nothing left to move
        except OSError as exc:
            # The row is committed; the file stays, and the background thread tries again now
            # and then. The operator is told: a full inbox is the next thing to come.
            problem = f"files cannot be moved out of the inbox into {display_path(target_dir)}: {exc.strerror or exc}"
            log.error("cannot move %s to %s: %s", item.source_ref, target_dir, exc)
            with self._lock:
                self._move_problem = problem
            self._returns.append(("stuck", item.path, item.key, target_dir, tag))
            self._wake.set()
            return None
        self._moved()
        self._returns.append(("done", item.path, None, None, ""))
        self._wake.set()
        return target

    def _moved(self) -> None:
        with self._lock:
            if self._move_problem:
                log.info("files move out of the inbox %s again", self.inbox)
            self._move_problem = ""

    # ------------------------------------------------------------------ the background thread

    def _run(self) -> None:
        next_scan = 0.0
        try:
            self._regrow.resume(time.monotonic())
            while not self._stopping.is_set():
                self._wake.clear()
                now = time.monotonic()
                self._take_returns(now)
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

    def _take_returns(self, now: float) -> None:
        while self._returns:
            what, path, key, where, tag = self._returns.popleft()
            self._taken.pop(path, None)
            if what == "retry":
                self._known.pop(path, None)  # found again by the next scan and settled anew
            elif what == "stuck" and key is not None and where is not None:
                self._stuck.add(path, key, where, tag, now)

    def _take_hints(self, now: float) -> None:
        while self._hints:
            kind, path = self._hints.popleft()
            if path.parent != self.inbox or skipped(path.name) or path in self._taken:
                continue
            key = key_of(path)
            if key is None or self._stuck.holds(path, key):
                continue  # gone, or not a regular file: the scan looks at it
            known = self._known.get(path)
            if kind == "moved":  # renamed into place: complete by convention
                self._known[path] = _Candidate(key=key, stable_since=now, complete=True)
            elif known is None or known.key != key:
                self._known[path] = _Candidate(key=key, stable_since=now)

    def _scan(self, now: float) -> None:
        try:
            with os.scandir(self.inbox) as it:
                entries = [(e.name, e.path, entry_kind(e)) for e in it]
        except OSError as exc:
            # Unreachable for now (a network share): keep what is known and try again.
            self._set_online(False, f"inbox {display_path(self.inbox)} unreachable: {exc.strerror or exc}")
            return
        self._set_online(True, "")
        present: set[Path] = set()
        for name, full, kind in entries:
            if kind in ("dir", "gone") or skipped(name):
                continue
            path = Path(full)
            present.add(path)
            if path in self._taken or path in self._known:
                continue
            special = None if kind == "file" else kind
            key = key_of(path) if special is None else lkey_of(path)
            if key is None or self._stuck.holds(path, key):
                continue  # gone, or decided already and its move failed (tried again below)
            self._known[path] = _Candidate(key=key, stable_since=now, special=special)
        for gone in [p for p in self._known if p not in present]:
            del self._known[gone]
        self._stuck.forget_missing(present)
        if self._stuck.retry(now):
            self._moved()
        self._regrow.check(now)  # the scan after this one finds what came back
        with self._lock:
            self._backlog = len(self._known) + len(self._ready)

    def _settle(self, now: float) -> None:
        newly: list[Path] = []
        for path, candidate in list(self._known.items()):
            key = key_of(path) if candidate.special is None else lkey_of(path)
            if key is None:
                del self._known[path]
                continue
            if key != candidate.key:  # still being written
                self._known[path] = _Candidate(key=key, stable_since=now, special=candidate.special)
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
        special = special_kind(path)
        if special == "gone":
            return None
        if special is not None:  # never opened: a FIFO would block the reader for good
            lkey = lkey_of(path) or candidate.key
            return _Loaded(path, lkey, source_ref, None, None, None, f"not a regular file: {special}")
        key = key_of(path)
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
            data = read_regular(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return _Loaded(
                path, key, source_ref, None, None, None, f"cannot read file: {exc.strerror or exc}"
            )
        if data is None:  # replaced by something that is not a file since the scan: look again
            self._known[path] = _Candidate(
                key=lkey_of(path) or key, stable_since=time.monotonic(), special="not a file"
            )
            return None
        if key_of(path) != key:  # written to while we read it
            self._known[path] = _Candidate(key=key_of(path) or key, stable_since=time.monotonic())
            return None
        digest = sha256_bytes(data)
        image: np.ndarray | None = None
        error: str | None = None
        try:
            image = decode_image(data)
        except DecodeError as exc:
            # Perhaps a writer that paused (a file cut short, or created and not yet written):
            # look again after the grace, and again whenever it changes, before rejecting it.
            maybe_unfinished = isinstance(exc, TruncatedError) or not data
            if (
                maybe_unfinished
                and not candidate.complete
                and candidate.grace_until is None
                and self.truncated_grace_s > 0
            ):
                now = time.monotonic()
                self._known[path] = _Candidate(
                    key=key, stable_since=now, grace_until=now + self.truncated_grace_s
                )
                return None
            error = str(exc)
        unreadable = error is not None
        return _Loaded(path, key, source_ref, data, digest, image, error, unreadable)

    def _set_online(self, online: bool, problem: str) -> None:
        with self._lock:
            if online != self._online or problem != self._problem:
                self._online, self._problem = online, problem
                self._since = datetime.now(UTC)
                if online:
                    log.info("inbox %s reachable again", self.inbox)
                else:
                    log.warning("%s", problem)
