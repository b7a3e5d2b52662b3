"""What every live camera source shares: a grab thread, health checks and a bounded queue.

A camera cannot wait for the station. One grab thread per source owns the device handle: it
reads frames as they come, turns them into parts with a software trigger and puts the parts in a
small bounded queue that the station's thread empties with ``next_part``.

Health is judged by the station itself, not by the driver (OpenCV does not reliably report a dead
camera: a USB unplug can return the last frame forever, a dropped network stream can block):

- no frame for ``frame_timeout_s``: offline (``status`` checks this on every poll, so the outage
  is reported even while the grab thread is stuck in a driver call);
- the same frame, bit for bit, for ``stale_after_s``: offline (a real sensor always has noise);
- a failed read, an ended stream or a failed open: offline.

Offline, the thread lets go of the handle and reconnects with back-off (``reconnect_min_s``
doubling up to ``reconnect_max_s``); the first frame after that reports the camera online again.

Backpressure (``Backpressure.RECORD_OVERFLOW``): when a new part finds the queue full, the oldest
queued part makes room (the line wants the newest verdict) and becomes a not-inspected part that
``next_part`` hands out first, so it is logged with the reason. Nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime

import numpy as np

from core.common.types import Decision, Part
from core.imaging.decode import DecodeError, frame_to_gray
from core.sources.base import Backpressure, SourceStatus
from core.sources.trigger import Shot, Trigger, make_trigger

log = logging.getLogger(__name__)

MAX_OVERFLOW_ROWS = 10_000  # not-inspected parts waiting for their rows; beyond, rows stand for several
OVERFLOW_REASON = (
    "not inspected: the inspection queue was full (the station was busy; a newer part took its place)"
)


class SourceError(RuntimeError):
    """The device cannot be opened or read; the message is what the operator sees."""


class LiveSource:
    """Base of live sources. Subclasses implement ``_connect``, ``_read`` and ``_disconnect``,
    all called on the grab thread only, then call ``_start()`` at the end of ``__init__``.

    Args:
        description: What the operator sees (no passwords).
        source_ref: Prefix of each part's ``source_ref``; the frame number follows ``#``.
        trigger: A ``Trigger`` or its name (``presence``, ``every-frame``).
        queue_size: Parts waiting for the station, at most.
        frame_timeout_s: No frame for this long: offline.
        stale_after_s: The same frame for this long: offline (0 turns the check off).
        reconnect_min_s, reconnect_max_s: Back-off between reconnection attempts.
    """

    backpressure = Backpressure.RECORD_OVERFLOW

    def __init__(
        self,
        *,
        description: str,
        source_ref: str,
        trigger: Trigger | str | None = None,
        queue_size: int = 4,
        frame_timeout_s: float = 2.0,
        stale_after_s: float = 5.0,
        reconnect_min_s: float = 0.2,
        reconnect_max_s: float = 2.0,
    ) -> None:
        self.description = description
        self._ref = source_ref
        self._trigger = make_trigger(trigger) if trigger is None or isinstance(trigger, str) else trigger
        self.queue_size = max(1, int(queue_size))
        self.frame_timeout_s = float(frame_timeout_s)
        self.stale_after_s = float(stale_after_s)
        self.reconnect_min_s = float(reconnect_min_s)
        self.reconnect_max_s = float(reconnect_max_s)

        self._cond = threading.Condition()
        self._queue: deque[Part] = deque()
        self._overflow: deque[Part] = deque()  # not-inspected parts, handed out first
        self._stopping = threading.Event()
        self._online = False
        self._message = f"{description}: connecting"
        self._since = datetime.now(UTC)
        self._last_frame_at: float | None = None
        self._frames = 0
        self._parts = 0
        self._overflowed = 0
        self._reconnects = 0
        self._ever_online = False
        self._offline_reported = False
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ subclass hooks (grab thread)

    def _connect(self) -> None:
        raise NotImplementedError

    def _read(self) -> np.ndarray | None:
        """The next frame; None when the stream ended or the read failed."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"grab {self.description}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the station's thread

    def next_part(self, timeout_s: float) -> Part | None:
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while not self._overflow and not self._queue:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return None
                self._cond.wait(remaining)
            part = self._overflow.popleft() if self._overflow else self._queue.popleft()
            self._parts += 1
            return part

    def acknowledge(self, part: Part, decision: Decision) -> None:
        pass  # a frame has nothing to move or delete

    def release(self, part: Part) -> None:
        with self._cond:
            self._parts -= 1
            if part.error is not None:
                self._overflow.appendleft(part)
            else:
                self._queue.appendleft(part)
                self._make_room()
            self._cond.notify_all()

    def status(self) -> SourceStatus:
        with self._cond:
            if (
                self._online
                and self._last_frame_at is not None
                and time.monotonic() - self._last_frame_at > self.frame_timeout_s
            ):
                self._went_offline(f"no frame for {self.frame_timeout_s:g} s")
            return SourceStatus(
                online=self._online,
                message=self._message,
                since=self._since,
                frames=self._frames,
                parts=self._parts,
                overflowed=self._overflowed,
                reconnects=self._reconnects,
                backlog=len(self._queue) + len(self._overflow),
            )

    def stop(self) -> None:
        """Stop grabbing; queued parts (and a part the trigger was following) stay to be taken."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.frame_timeout_s + 5.0)
            if thread.is_alive():
                log.error(
                    "%s: the grab thread is stuck in the driver and cannot be stopped", self.description
                )
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        with self._cond:
            left = len(self._queue) + len(self._overflow)
            if left:
                log.warning(
                    "%s: %d parts were still queued at close and were not recorded", self.description, left
                )
            self._queue.clear()
            self._overflow.clear()
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def grab_thread(self) -> threading.Thread | None:
        return self._thread

    # ------------------------------------------------------------------ the grab thread

    def _run(self) -> None:
        backoff_s: float | None = None
        connected = False
        previous: np.ndarray | None = None
        same_since: float | None = None
        frame_no = 0
        try:
            while not self._stopping.is_set():
                if not connected:
                    try:
                        self._connect()
                        connected = True
                        previous, same_since = None, None
                    except SourceError as exc:
                        self._offline(str(exc))
                        backoff_s = self._wait_backoff(backoff_s)
                        continue
                reason = "the stream ended"
                try:
                    frame = self._read()
                except SourceError as exc:
                    frame, reason = None, str(exc)
                if self._stopping.is_set():
                    break
                now = time.monotonic()
                if frame is not None and self.stale_after_s > 0 and _same_frame(frame, previous):
                    same_since = same_since or now
                    if now - same_since >= self.stale_after_s:
                        frame, reason = None, f"the same frame for {self.stale_after_s:g} s (stale)"
                else:
                    same_since = None
                if frame is None:
                    self._offline(reason)
                    self._shoot(self._trigger_flush())
                    self._disconnect_quietly()
                    connected = False
                    backoff_s = self._wait_backoff(backoff_s)
                    continue
                previous = frame
                backoff_s = None
                frame_no += 1
                self._frame_arrived(now)
                try:
                    gray = frame_to_gray(frame)
                except DecodeError as exc:
                    log.warning("%s: frame %d skipped: %s", self.description, frame_no, exc)
                    continue
                self._shoot(self._trigger.feed(gray, frame_no))
        except Exception:  # a bug must not leave the station waiting in silence
            log.exception("%s: the grab thread failed", self.description)
            self._offline("the grab thread failed (see the log)")
        finally:
            if connected:
                self._disconnect_quietly()
            self._shoot(self._trigger_flush())

    def _trigger_flush(self) -> Shot | None:
        return self._trigger.flush()

    def _wait_backoff(self, previous_s: float | None) -> float:
        delay = self.reconnect_min_s if previous_s is None else min(previous_s * 2.0, self.reconnect_max_s)
        self._stopping.wait(delay)
        return delay

    def _disconnect_quietly(self) -> None:
        try:
            self._disconnect()
        except Exception:
            log.exception("%s: closing the device failed", self.description)

    def _frame_arrived(self, now: float) -> None:
        with self._cond:
            self._last_frame_at = now
            self._frames += 1
            if not self._online:
                if self._ever_online:
                    self._reconnects += 1
                self._ever_online = True
                self._offline_reported = False
                self._online = True
                self._message = f"{self.description}: online"
                self._since = datetime.now(UTC)
                log.info("%s", self._message)

    def _offline(self, reason: str) -> None:
        with self._cond:
            if self._online or not self._offline_reported:
                self._went_offline(reason)

    def _went_offline(self, reason: str) -> None:
        # Called with the lock held. The first reason stays until the camera is back.
        self._online = False
        self._offline_reported = True
        self._message = f"{self.description}: offline, {reason} (reconnecting)"
        self._since = datetime.now(UTC)
        log.warning("%s", self._message)

    def _shoot(self, shot: Shot | None) -> None:
        if shot is None:
            return
        part = Part(
            source_ref=f"{self._ref}#{shot.frame_no}",
            arrived_at=datetime.now(UTC),
            image=shot.image,
            error=shot.error,
        )
        with self._cond:
            if part.error is not None:
                self._overflow.append(part)
            else:
                self._queue.append(part)
                self._make_room()
            self._cond.notify_all()

    def _make_room(self) -> None:
        # Called with the lock held.
        while len(self._queue) > self.queue_size:
            oldest = self._queue.popleft()
            self._overflowed += 1
            if len(self._overflow) < MAX_OVERFLOW_ROWS:
                self._overflow.append(dataclasses.replace(oldest, image=None, error=OVERFLOW_REASON))
            else:
                self._merge_overflow(oldest)
            if self._overflowed == 1 or self._overflowed % 100 == 0:
                log.warning(
                    "%s: %d parts not inspected so far: the queue was full",
                    self.description,
                    self._overflowed,
                )

    def _merge_overflow(self, part: Part) -> None:
        # Called with the lock held. The station cannot even write one row per lost part: the
        # newest waiting overflow row stands for several parts (still counted, still logged).
        last = self._overflow[-1]
        first_ref, _, rest = (last.error or "").partition(" | ")
        count = int(rest.split(" parts", 1)[0]) if rest else 1
        reason = f"{OVERFLOW_REASON} | {count + 1} parts up to {part.source_ref}"
        self._overflow[-1] = dataclasses.replace(last, error=reason)


def _same_frame(frame: np.ndarray, previous: np.ndarray | None) -> bool:
    if previous is None or frame.shape != previous.shape or frame.dtype != previous.dtype:
        return False
    # A sparse look first: live frames differ almost everywhere (sensor noise).
    return bool(np.array_equal(frame[::7, ::7], previous[::7, ::7]) and np.array_equal(frame, previous))
