"""Hot folder: the camera vendor's software writes image files into an inbox.

The periodic scan is the source of truth (watch events get lost on overflow and on network
shares). A file is taken only once its size and modification time have stayed the same for
``settle_s``; hidden and temporary names (``.name``, ``*.tmp``, ``*.part``) are writes still in
progress. After the part's row is committed the file moves to ``processed/`` (or ``rejected/``
when it could not be inspected) on the same volume. Nothing is ever dropped: the backlog waits in
the inbox.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from core.fileio import sha256_bytes
from core.imageio import DecodeError, decode_image
from core.types import Decision, Part, Verdict

_SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart")


class HotFolderSource:
    def __init__(
        self,
        inbox: Path,
        *,
        settle_s: float = 0.3,
        scan_interval_s: float = 0.1,
        processed_dir: Path | None = None,
        rejected_dir: Path | None = None,
    ) -> None:
        self.inbox = Path(inbox)
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.processed_dir = processed_dir or self.inbox / "processed"
        self.rejected_dir = rejected_dir or self.inbox / "rejected"
        self.settle_s = settle_s
        self.scan_interval_s = scan_interval_s
        self.description = f"hot folder {self.inbox}"
        self._seen: dict[Path, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, first seen stable)
        self._ready: list[Path] = []
        self._in_flight: dict[str, Path] = {}  # part_id -> file
        self._last_scan = 0.0

    def _scan(self) -> None:
        now = time.monotonic()
        present: set[Path] = set()
        try:
            entries = list(os.scandir(self.inbox))
        except OSError:
            return  # inbox unreachable for now (network share); try again at the next scan
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name.lower().endswith(_SKIP_SUFFIXES):
                continue
            try:
                if not entry.is_file():
                    continue
                stat = entry.stat()
            except OSError:
                continue
            path = Path(entry.path)
            present.add(path)
            if path in self._ready or path in self._in_flight.values():
                continue
            key = (stat.st_size, stat.st_mtime_ns)
            previous = self._seen.get(path)
            if previous is None or previous[:2] != key:
                self._seen[path] = (*key, now)
            elif now - previous[2] >= self.settle_s:
                self._ready.append(path)
                del self._seen[path]
        for gone in set(self._seen) - present:
            del self._seen[gone]
        self._ready.sort(key=lambda p: p.name)
        self._last_scan = now

    def next_part(self, timeout_s: float) -> Part | None:
        deadline = time.monotonic() + timeout_s
        while True:
            if not self._ready and time.monotonic() - self._last_scan >= self.scan_interval_s:
                self._scan()
            if self._ready:
                return self._read(self._ready.pop(0))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(self.scan_interval_s, remaining))

    def _read(self, path: Path) -> Part:
        arrived = datetime.now(UTC)
        try:
            data = path.read_bytes()
        except OSError as exc:
            part = Part(
                source_ref=str(path), arrived_at=arrived, image=None, error=f"cannot read file: {exc}"
            )
        else:
            digest = sha256_bytes(data)
            try:
                image = decode_image(data)
                part = Part(
                    source_ref=str(path), arrived_at=arrived, image=image, content_hash=digest, encoded=data
                )
            except DecodeError as exc:
                part = Part(
                    source_ref=str(path), arrived_at=arrived, image=None, content_hash=digest, error=str(exc)
                )
        self._in_flight[part.part_id] = path
        return part

    def acknowledge(self, part: Part, decision: Decision) -> None:
        path = self._in_flight.pop(part.part_id, None)
        if path is None:
            return
        target_dir = self.rejected_dir if decision.verdict is Verdict.NOT_INSPECTED else self.processed_dir
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / path.name
        if target.exists():
            target = target_dir / f"{path.stem}.{part.part_id}{path.suffix}"
        os.replace(path, target)

    def close(self) -> None:
        self._ready.clear()
        self._in_flight.clear()
