"""Real inputs for the source tests: part images, a conveyor video, an ffmpeg stream server."""

from __future__ import annotations

import shutil
import signal
import socket
import struct
import subprocess
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None,
    reason="ffmpeg is not installed (apt-get install ffmpeg): no camera stream to test against",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def conveyor_frames(
    n_parts: int,
    *,
    width: int = 160,
    height: int = 120,
    step_px: int = 9,
    gap_frames: int = 6,
    seed: int = 0,
) -> list[np.ndarray]:
    """Bright discs on a dark, noisy belt moving left to right, one after the other.

    Each part enters at the left edge, crosses the whole frame and leaves on the right, followed
    by ``gap_frames`` empty frames. Noise keeps every frame different, as on a real sensor.
    """
    rng = np.random.default_rng(seed)
    radius = height // 5
    frames: list[np.ndarray] = []

    def belt() -> np.ndarray:
        return np.clip(rng.normal(18, 4, (height, width)), 0, 255).astype(np.uint8)

    for _ in range(n_parts):
        for x in range(-radius, width + radius + 1, step_px):
            frame = belt()
            cv2.circle(frame, (x, height // 2), radius, 200, -1)
            cv2.circle(frame, (x + radius // 3, height // 2 - radius // 3), radius // 4, 120, -1)
            frames.append(frame)
        frames.extend(belt() for _ in range(gap_frames))
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    """MJPEG in AVI, which OpenCV writes and FFmpeg reads everywhere."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height), isColor=True)
    assert writer.isOpened(), "OpenCV cannot write MJPEG video here"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


class StreamServer:
    """``ffmpeg`` serving MJPEG over HTTP on 127.0.0.1, like a network camera.

    ``source`` is an ffmpeg input: a lavfi test pattern by default, or a video file (looped).
    ``-listen 1`` serves one client; the camera source is that client.
    """

    def __init__(
        self,
        port: int,
        source: Path | None = None,
        *,
        fps: int = 15,
        size: str = "160x120",
        still: bool = False,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/camera.mjpg"
        self.source = source
        self.still = still  # ``source`` is one image sent over and over (a frozen camera)
        self.fps = fps
        self.size = size
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> StreamServer:
        assert FFMPEG is not None
        if self.source is None:
            inputs = ["-re", "-f", "lavfi", "-i", f"testsrc=size={self.size}:rate={self.fps}"]
        elif self.still:
            inputs = ["-re", "-loop", "1", "-framerate", str(self.fps), "-i", str(self.source)]
        else:
            inputs = ["-re", "-stream_loop", "-1", "-i", str(self.source)]
        cmd = [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", *inputs,
            "-an", "-c:v", "mjpeg", "-q:v", "4", "-f", "mpjpeg", "-listen", "1", self.url,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # Listening once the port accepts; probing it would use up the single client. Generous:
        # on a loaded 2-core machine ffmpeg once took over 10 s to listen.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._listening():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ffmpeg exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                )
            time.sleep(0.02)
        raise RuntimeError("ffmpeg did not start listening")

    def _listening(self) -> bool:
        try:
            with open("/proc/net/tcp", encoding="ascii") as fh:
                wanted = f":{self.port:04X}"
                return any(
                    line.split()[1].endswith(wanted) and line.split()[3] == "0A"
                    for line in fh.readlines()[1:]
                )
        except OSError:
            time.sleep(0.3)
            return True

    def pause(self) -> None:
        """SIGSTOP: the connection stays open but no byte comes (a hung camera or switch)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def make_png(
    width: int, height: int, colour_type: int, rows: list[bytes], *, depth: int = 8, extra: bytes = b""
) -> bytes:
    """A PNG written by hand (OpenCV cannot write palette PNGs): unfiltered rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + extra
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )
