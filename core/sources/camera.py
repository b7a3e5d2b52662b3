"""Cameras through OpenCV: a device index, a network URL (RTSP, HTTP MJPEG) or a video file.

``CameraSource`` is live (see ``core.sources.live``): a grab thread, a software trigger, health
checks, reconnection with back-off and a bounded queue whose overflow is recorded. Network
streams are opened through FFmpeg with open and read time-outs, so a dead server cannot block a
read for long; RTSP goes over TCP unless ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` says otherwise (lost
UDP packets smear frames, which an inspection must not see). A video file given to
``CameraSource`` plays at its own frame rate, over and over, like a camera.

``VideoFileSource`` (``video:FILE``) reads a recorded file on demand instead: nothing is dropped,
the trigger runs over every frame, and the source is finished at the end of the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.common.types import Decision, Part
from core.imaging.decode import DecodeError, frame_to_gray
from core.sources.base import Backpressure, SourceStatus
from core.sources.live import LiveSource, SourceError
from core.sources.trigger import Trigger, make_trigger

log = logging.getLogger(__name__)

# FFmpeg's own messages ("Connection refused" on every retry) would flood the console of a
# station whose camera is down; the station reports the outage itself.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


# Query keys whose values are secrets (``?user=admin&pwd=...``, ``?token=...``), as many IP
# cameras take them; matched anywhere in the key, case-insensitively.
_SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret|token|key|auth|cred|sig", re.IGNORECASE)


def redact_url(url: str) -> str:
    """A URL without its password, fit for the operator's screen, logs and the visual log.

    The user info (``user:password@``) becomes ``***@``, and so do the values of query keys
    that name a secret (``pwd``, ``password``, ``token``, ...). A password typed with a raw
    ``/``, ``?`` or ``#`` in it (FFmpeg wants them percent-encoded) is hidden too: everything up
    to the last ``@`` counts as user info when it holds a ``:`` or no ``/``, at the price of
    hiding a host in the rare URL that has an ``@`` in its path.

    Args:
        url: A camera URL; anything without ``://`` comes back unchanged.

    Returns:
        The URL with every secret replaced by ``***``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, host_and_path = rest.rpartition("@")
    if at and (":" in userinfo or "/" not in userinfo):
        rest = f"***@{host_and_path}"
    before_fragment, hash_sign, fragment = rest.partition("#")
    path, question, query = before_fragment.partition("?")
    if question:
        query = "&".join(
            f"{key}=***" if eq and _SECRET_QUERY_KEY.search(key) else f"{key}{eq}{value}"
            for key, eq, value in (item.partition("=") for item in query.split("&"))
        )
    return f"{scheme}{sep}{path}{question}{query}{hash_sign}{fragment}"


def _is_url(target: str) -> bool:
    return "://" in target


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV warns on every failed open ("can't be used to capture by name"); the station
    reports the outage itself, once, instead of every back-off interval."""
    import cv2

    logging_api = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_api is None:
        yield
        return
    level = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging_api.setLogLevel(level)


class CameraSource(LiveSource):
    """A live camera through OpenCV.

    Args:
        target: Device index (``0``), a URL, or a video file to play as if it were a camera.
        open_timeout_s: Give up opening a network stream after this long.
        options: See ``LiveSource`` (trigger, queue_size, frame_timeout_s, stale_after_s, ...).
    """

    def __init__(self, target: int | str, *, open_timeout_s: float = 3.0, **options: Any) -> None:
        self.target = target
        self.open_timeout_s = float(open_timeout_s)
        shown = redact_url(target) if isinstance(target, str) else str(target)
        self._is_file = isinstance(target, str) and not _is_url(target)
        super().__init__(description=f"camera {shown}", source_ref=f"camera:{shown}", **options)
        self._capture: Any = None
        self._frame_interval_s = 0.0
        self._next_frame_at = 0.0
        self._start()

    @classmethod
    def from_spec(cls, kind: str, target: str, **options: Any) -> CameraSource | VideoFileSource:
        """``camera:0``, ``camera:rtsp://...``, ``camera:FILE`` (played live) or ``video:FILE``."""
        if kind == "video":
            options.pop("queue_size", None)
            return VideoFileSource(Path(target), **options)
        return cls(int(target) if target.isdigit() else target, **options)

    # ------------------------------------------------------------------ grab thread hooks

    def _connect(self) -> None:
        with _quiet_opencv():
            self._open()

    def _open(self) -> None:
        import cv2

        if isinstance(self.target, int):
            capture = cv2.VideoCapture(self.target)
        elif self._is_file:
            if not Path(self.target).is_file():
                raise SourceError(f"no video file {self.target}")
            capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG)
        else:
            if self.target.lower().startswith("rtsp"):
                os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.frame_timeout_s * 1000),
            ]  # fmt: skip
            capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            raise SourceError("cannot open the camera")
        self._capture = capture
        if self._is_file:
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            self._frame_interval_s = 1.0 / fps if 0 < fps < 1000 else 0.04
            self._next_frame_at = time.monotonic()

    def _read(self) -> np.ndarray | None:
        if self._frame_interval_s:  # a file played as a camera: at its own pace
            delay = self._next_frame_at - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                return None
            self._next_frame_at = max(self._next_frame_at + self._frame_interval_s, time.monotonic() - 1.0)
        ok, frame = self._capture.read()
        return frame if ok and frame is not None and frame.size else None

    def _disconnect(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class VideoFileSource:
    """A recorded video read on demand: every frame goes through the trigger, none is dropped.

    Args:
        path: The video file.
        trigger: A ``Trigger`` or its name (``presence``, ``every-frame``).
    """

    backpressure = Backpressure.WAIT

    def __init__(self, path: Path, *, trigger: Trigger | str | None = None, **_ignored: Any) -> None:
        import cv2

        self.path = Path(path)
        self.description = f"video {self.path}"
        self._trigger = make_trigger(trigger) if trigger is None or isinstance(trigger, str) else trigger
        if not self.path.is_file():
            raise FileNotFoundError(f"no video file {self.path}")
        self._capture: Any = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self._capture.isOpened():
            self._capture.release()
            raise ValueError(f"OpenCV cannot read the video {self.path}")
        self._frames = 0
        self._parts = 0
        self._finished = False
        self._since = datetime.now(UTC)
        self._pending: list[Part] = []

    def next_part(self, timeout_s: float) -> Part | None:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not self._pending and not self._finished:
            ok, frame = self._capture.read() if self._capture is not None else (False, None)
            if not ok or frame is None:
                self._end()
                break
            self._frames += 1
            try:
                shot = self._trigger.feed(frame_to_gray(frame), self._frames)
            except DecodeError as exc:
                log.warning("%s: frame %d skipped: %s", self.description, self._frames, exc)
                shot = None
            if shot is not None:
                self._pending.append(self._part(shot.image, shot.frame_no, shot.error))
            if time.monotonic() > deadline:
                break
        if not self._pending:
            return None
        self._parts += 1
        return self._pending.pop(0)

    def _part(self, image: np.ndarray, frame_no: int, error: str | None) -> Part:
        return Part(
            source_ref=f"video:{self.path}#{frame_no}", arrived_at=datetime.now(UTC), image=image, error=error
        )

    def _end(self) -> None:
        self._finished = True
        self._since = datetime.now(UTC)
        last = self._trigger.flush()
        if last is not None:
            self._pending.append(self._part(last.image, last.frame_no, last.error))
        self._release_capture()

    def acknowledge(self, part: Part, decision: Decision) -> None:
        pass

    def release(self, part: Part) -> None:
        self._parts -= 1
        self._pending.insert(0, part)

    def status(self) -> SourceStatus:
        done = self._finished and not self._pending
        return SourceStatus(
            online=not done,
            message=f"{self.description}: {'finished' if done else 'playing'}",
            since=self._since,
            frames=self._frames,
            parts=self._parts,
            backlog=len(self._pending),
            finished=done,
        )

    def stop(self) -> None:
        if not self._finished:
            self._end()  # a part the trigger was following is still handed out

    def close(self) -> None:
        self.stop()
        self._pending.clear()

    def _release_capture(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()
