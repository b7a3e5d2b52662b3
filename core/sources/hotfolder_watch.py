"""Watch events for the hot folder: hints that make it react at once (the rescan is the truth)."""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger("core.sources.hotfolder")

Hints = deque[tuple[str, Path]]  # (moved|changed, path)


def start_observer(inbox: Path, hints: Hints, wake: threading.Event) -> Any:
    """A watchdog observer that appends hints about files in ``inbox`` and sets ``wake``.

    Returns None when watch events are unavailable (watchdog missing, the inotify watch limit):
    the rescan then finds every file on its own.
    """
    try:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError:
        log.warning("watchdog is not installed: polling %s", inbox)
        return None

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
        observer.schedule(_Hints(), str(inbox), recursive=False)
        observer.start()
    except OSError as exc:  # e.g. the inotify watch limit: the rescan still finds every file
        log.warning("watch events unavailable for %s (%s): polling", inbox, exc)
        return None
    return observer


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
