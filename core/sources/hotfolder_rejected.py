"""Second chances for files that left the inbox too early or could not leave it.

``RegrowWatch``: a file rejected as unreadable (truncated, corrupt, empty) may have been a writer
that paused for longer than the settle time and the truncation grace together. On POSIX the
writer keeps writing into the moved file, so the file grows in ``rejected/``. Such a file is
watched for a while; once it grew and then stayed unchanged for the settle time it is moved back
into the inbox and inspected as a new part (its first row still says what was seen then). The
watch list is kept on disk (``inbox/.inspector/rejected-watch.json``, what each file looked like
when it was rejected, with the wall-clock end of its watch), so a station that is killed or
restarted while a writer is still paused goes on watching: a file that grew in the meantime comes
back after the restart.

``StuckMoves``: a file whose row is committed but whose move failed (a read-only inbox, no
permission) is tried again now and then, so the inbox empties once the cause is fixed.

``StuckMoves`` runs on the hot folder's background thread only; ``RegrowWatch`` is also told of
a rejection by the station's thread (a lock guards it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.common.fileio import write_atomic
from core.common.types import new_part_id
from core.sources.hotfolder_files import Key, key_of, lkey_of, tagged_name

log = logging.getLogger("core.sources.hotfolder")

_MOST_WATCHED = 1000  # a flood of broken files must not make every scan slow
WATCH_FILE = ".inspector/rejected-watch.json"  # beside the inbox lock: not a file of the inbox


@dataclass(slots=True)
class _Watched:
    name: str  # the name it had in the inbox
    key: Key
    until: float  # monotonic: stop watching then unless it is growing
    changed_at: float | None = None


class RegrowWatch:
    """Rejected files that may still be being written; see the module docstring.

    Args:
        inbox: Where a grown file goes back to.
        watch_s: How long a rejected file is watched (0: never).
        settle_s: How long a grown file must stay unchanged before it comes back.
    """

    def __init__(self, inbox: Path, *, watch_s: float, settle_s: float) -> None:
        self.inbox = inbox
        self.watch_s = watch_s
        self.settle_s = settle_s
        self._watched: dict[Path, _Watched] = {}
        self._saved: list[tuple[str, str, Key]] | None = None  # what the file on disk says
        self._lock = threading.Lock()

    def add(self, rejected: Path, name: str, key: Key, now: float) -> None:
        if self.watch_s <= 0:
            return
        with self._lock:
            if len(self._watched) >= _MOST_WATCHED:
                del self._watched[next(iter(self._watched))]  # the oldest
            self._watched[rejected] = _Watched(name=name, key=key, until=now + self.watch_s)
            self._save(now)

    def resume(self, now: float) -> None:
        """Take up the watch list an earlier station left (killed or stopped while watching).

        A listed file whose size or time stamp differ from what was recorded grew meanwhile: it
        counts as changed now, and comes back once it has settled.
        """
        try:
            entries = json.loads((self.inbox / WATCH_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # none, or unreadable: nothing to resume (the files stay in rejected/)
        with self._lock:
            self._resume(entries, now)

    def _resume(self, entries: object, now: float) -> None:
        wall = time.time()
        for entry in entries if isinstance(entries, list) else []:
            try:
                path, name, key = Path(entry["path"]), str(entry["name"]), (int(entry["size"]), int(entry["mtime_ns"]))
                left_s = float(entry["until"]) - wall
            except (KeyError, TypeError, ValueError):
                continue
            current = key_of(path)
            if current is None or (left_s <= 0 and current == key):
                continue
            watched = _Watched(name=name, key=key, until=now + max(left_s, 0.0))
            if current != key:
                watched.key, watched.changed_at = current, now
            self._watched[path] = watched
        self._save(now)

    def _save(self, now: float) -> None:
        """Write the watch list where the next station finds it (only when it changed)."""
        wall = time.time()
        entries = [
            {"path": str(p), "name": w.name, "size": w.key[0], "mtime_ns": w.key[1], "until": wall + w.until - now}
            for p, w in self._watched.items()
        ]
        summary = [(e["path"], e["name"], (e["size"], e["mtime_ns"])) for e in entries]
        if summary == self._saved:
            return
        try:
            write_atomic(self.inbox / WATCH_FILE, json.dumps(entries).encode("utf-8"))
            self._saved = summary  # type: ignore[assignment]
        except OSError as exc:  # a read-only inbox: the watch still works until a restart
            log.debug("cannot keep the rejected files' watch list: %s", exc)

    def __len__(self) -> int:
        return len(self._watched)

    def check(self, now: float) -> list[Path]:
        """Move grown and settled files back into the inbox; returns where they went."""
        with self._lock:
            return self._check(now)

    def _check(self, now: float) -> list[Path]:
        back: list[Path] = []
        for path, watched in list(self._watched.items()):
            key = key_of(path)
            if key is None:
                del self._watched[path]  # removed by someone: nothing to bring back
            elif key != watched.key:
                watched.key, watched.changed_at = key, now  # growing: wait until it stops
            elif watched.changed_at is not None and now - watched.changed_at >= self.settle_s:
                del self._watched[path]
                target = self.inbox / watched.name
                if target.exists() or os.path.lexists(target):
                    target = self.inbox / tagged_name(watched.name, f"regrown-{new_part_id()}")
                try:
                    os.replace(path, target)
                except OSError as exc:
                    log.error("%s grew after it was rejected but cannot go back to the inbox: %s", path, exc)
                    continue
                log.warning(
                    "%s grew after it was rejected as unreadable (a writer that paused): back in the inbox",
                    target,
                )
                back.append(target)
            elif watched.changed_at is None and now >= watched.until:
                del self._watched[path]
        self._save(now)
        return back


@dataclass(slots=True)
class _Stuck:
    key: Key
    target_dir: Path
    tag: str
    next_try: float


class StuckMoves:
    """Decided files that could not be moved out of the inbox; tried again every ``retry_s``."""

    def __init__(self, *, retry_s: float = 5.0) -> None:
        self.retry_s = retry_s
        self._stuck: dict[Path, _Stuck] = {}

    def add(self, path: Path, key: Key, target_dir: Path, tag: str, now: float) -> None:
        self._stuck[path] = _Stuck(key, target_dir, tag, now + self.retry_s)

    def holds(self, path: Path, key: Key | None) -> bool:
        """Whether ``path`` is a decided file (same key) still waiting for its move."""
        stuck = self._stuck.get(path)
        return stuck is not None and stuck.key == key

    def forget_missing(self, present: set[Path]) -> None:
        for gone in [p for p in self._stuck if p not in present]:
            del self._stuck[gone]

    def retry(self, now: float) -> list[Path]:
        """Try the due moves again; returns the files that moved."""
        moved: list[Path] = []
        for path, stuck in list(self._stuck.items()):
            if now < stuck.next_try:
                continue
            if lkey_of(path) is None:
                del self._stuck[path]
                continue
            if key_of(path) != stuck.key and lkey_of(path) != stuck.key:
                del self._stuck[path]  # replaced by a new file: the scan takes it
                continue
            try:
                move_out(path, stuck.target_dir, stuck.tag)
            except OSError as exc:
                stuck.next_try = now + self.retry_s
                log.debug("still cannot move %s: %s", path, exc)
                continue
            del self._stuck[path]
            moved.append(path)
        return moved


def move_out(path: Path, target_dir: Path, tag: str) -> Path:
    """Move ``path`` into ``target_dir`` under its name, or tagged when that name is taken.

    Raises:
        OSError: The move failed (FileNotFoundError: someone else removed the file).
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    if os.path.lexists(target):
        target = target_dir / tagged_name(path.name, tag)
    os.replace(path, target)
    return target
