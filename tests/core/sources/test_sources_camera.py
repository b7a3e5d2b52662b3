"""Network cameras for real: an MJPEG stream served by ffmpeg on 127.0.0.1, killed, stalled, frozen.

The station itself must notice an outage (OpenCV does not reliably say so), report it within
3 s, reconnect with back-off, resume within 5 s of the camera's return, and leave no thread or
file handle behind. Frames that find the queue full are counted and come back as not-inspected
parts, never dropped in silence.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from source_helpers import StreamServer, conveyor_frames, free_port, needs_ffmpeg, write_video

from core.sources import Backpressure
from core.sources.camera import CameraSource, VideoFileSource, redact_url
from core.sources.live import OVERFLOW_REASON


def _handles() -> tuple[int, int]:
    """(open file descriptors, native threads) of this process."""
    return len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task"))


def _wait_for(condition, limit_s: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``condition()`` held (polled every 20 ms); fails after ``limit_s``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > limit_s:
            pytest.fail(f"not within {limit_s} s")
        time.sleep(0.02)
    return time.monotonic() - start


class _Station:
    """Takes parts as fast as they come, like the station's thread would."""

    def __init__(self, source: CameraSource) -> None:
        self.source = source
        self.parts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-consumer")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.source.next_part(0.05) is not None:
                self.parts += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def warm_opencv() -> None:
    """OpenCV and FFmpeg set up process-wide state (thread pools) on first use: not a leak."""
    cv2.cvtColor(np.zeros((8, 8, 3), np.uint8), cv2.COLOR_BGR2GRAY)
    cv2.VideoCapture(
        "http://127.0.0.1:9/none.mjpg", cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 200]
    ).release()


@needs_ffmpeg
def test_outage_reported_and_stream_resumes_without_leaks(warm_opencv: None) -> None:
    server = StreamServer(free_port())
    fds_before, tasks_before = _handles()
    threads_before = set(threading.enumerate())
    server.start()
    source = CameraSource(server.url, trigger="every-frame", frame_timeout_s=1.5)
    station = _Station(source)
    figures: dict[str, float] = {}
    try:
        _wait_for(lambda: source.status().online and source.status().frames > 5, 10)

        # 1. The server dies mid-stream.
        server.kill()
        figures["killed: outage reported after s"] = _wait_for(lambda: not source.status().online, 3.0)
        time.sleep(1.5)  # down for a while: several reconnection attempts fail
        assert not source.status().online
        frames = source.status().frames
        server.start()
        figures["killed: frames resumed after s"] = _wait_for(
            lambda: source.status().online and source.status().frames > frames, 5.0
        )

        # 2. The server hangs: the connection stays open, nothing arrives (time-out by the station).
        server.pause()
        figures["stalled: outage reported after s"] = _wait_for(lambda: not source.status().online, 3.0)
        assert "no frame" in source.status().message or "ended" in source.status().message
        server.kill()
        frames = source.status().frames
        server.start()
        figures["stalled: frames resumed after s"] = _wait_for(
            lambda: source.status().online and source.status().frames > frames, 5.0
        )
        status = source.status()
        assert status.reconnects == 2 and status.overflowed == 0
    finally:
        station.stop()
        source.close()
        server.kill()
    print("\n" + "\n".join(f"  {name}: {value:.2f}" for name, value in figures.items()))
    assert station.parts >= 5
    time.sleep(0.2)
    assert set(threading.enumerate()) - threads_before == set()
    assert _handles() == (fds_before, tasks_before)


@needs_ffmpeg
def test_frozen_camera_sending_the_same_frame_is_offline(tmp_path: Path, warm_opencv: None) -> None:
    still = tmp_path / "still.png"
    frame = np.clip(np.random.default_rng(0).normal(60, 20, (120, 160)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(still), frame)
    server = StreamServer(free_port(), still, still=True).start()
    source = CameraSource(server.url, trigger="every-frame", stale_after_s=1.0, reconnect_max_s=5.0)
    station = _Station(source)
    try:
        _wait_for(lambda: source.status().online, 10)
        waited = _wait_for(lambda: not source.status().online, 3.0)
        assert "same frame" in source.status().message
    finally:
        station.stop()
        source.close()
        server.kill()
    assert waited <= 3.0


@needs_ffmpeg
def test_full_queue_turns_the_oldest_parts_into_not_inspected_parts(warm_opencv: None) -> None:
    server = StreamServer(free_port(), fps=20).start()
    source = CameraSource(server.url, trigger="every-frame", queue_size=2)
    assert source.backpressure is Backpressure.RECORD_OVERFLOW
    try:
        _wait_for(lambda: source.status().frames > 12, 10)  # nobody takes parts meanwhile
        source.stop()
        taken = []
        while (part := source.next_part(0.0)) is not None:
            taken.append(part)
        status = source.status()
    finally:
        source.close()
        server.kill()
    overflow = [p for p in taken if p.error is not None]
    kept = [p for p in taken if p.error is None]
    assert status.overflowed == len(overflow) > 0
    assert all(p.error == OVERFLOW_REASON and p.image is None for p in overflow)
    assert len(kept) == 2 and all(p.image is not None for p in kept)  # the newest two
    assert len(taken) == status.frames  # every frame accounted for
    numbers = [int(p.source_ref.rsplit("#", 1)[1]) for p in taken]
    assert sorted(numbers) == list(range(1, status.frames + 1))
    assert max(int(p.source_ref.rsplit("#", 1)[1]) for p in kept) == status.frames


def test_video_file_is_read_on_demand_and_finishes(tmp_path: Path) -> None:
    video = write_video(tmp_path / "line.avi", conveyor_frames(4, step_px=7))
    source = VideoFileSource(video)
    parts = []
    while not source.status().finished:
        part = source.next_part(0.5)
        if part is not None:
            parts.append(part)
    source.close()
    assert len(parts) == 4 and all(p.error is None and p.image is not None for p in parts)
    assert source.backpressure is Backpressure.WAIT


def test_unreachable_camera_is_offline_and_close_is_prompt() -> None:
    source = CameraSource(f"http://127.0.0.1:{free_port()}/none.mjpg", open_timeout_s=0.5)
    try:
        _wait_for(lambda: not source.status().online and "offline" in source.status().message, 5)
    finally:
        started = time.monotonic()
        source.close()
    assert time.monotonic() - started < 3.0
    assert source.grab_thread is not None and not source.grab_thread.is_alive()


SECRET = "s3cret-Pw"


def _shown_texts(source: CameraSource, statuses: list[str], parts: list[str]) -> str:
    """Everything the source shows anyone: its description, statuses, parts and thread names."""
    threads = [t.name for t in threading.enumerate()]
    return "\n".join([source.description, *statuses, *parts, *threads])


def _assert_secret_hidden(
    shown: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    out, err = capfd.readouterr()
    assert caplog.records, "the source logged nothing: the log check would prove nothing"
    for where, text in (("shown", shown), ("log", logged), ("stdout", out), ("stderr", err)):
        assert SECRET not in text, f"the password reached the {where}: {text}"


@pytest.mark.parametrize(
    "url",
    [
        f"http://admin:{SECRET}@127.0.0.1:{{port}}/none.mjpg",
        f"http://127.0.0.1:{{port}}/video.cgi?user=admin&pwd={SECRET}",
        f"http://admin:pa/{SECRET}@127.0.0.1:{{port}}/none.mjpg",  # a raw "/" in the password
    ],
)
def test_an_unreachable_camera_never_shows_its_password(
    url: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    source = CameraSource(url.format(port=free_port()), open_timeout_s=0.3, reconnect_max_s=0.3)
    statuses: list[str] = []
    try:
        # Offline, then several failed reconnections: each message the operator could see.
        _wait_for(lambda: statuses.append(source.status().message) or "reconnecting" in statuses[-1], 5)
        time.sleep(1.0)
        statuses.append(source.status().message)
        shown = _shown_texts(source, statuses, [])
    finally:
        source.close()
    assert "127.0.0.1" in source.description  # the camera is still named, only the secret is hidden
    _assert_secret_hidden(shown, caplog, capfd)


@needs_ffmpeg
def test_a_streaming_camera_never_shows_its_password_online_offline_or_back(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], warm_opencv: None
) -> None:
    caplog.set_level(logging.DEBUG)
    server = StreamServer(free_port()).start()
    # ffmpeg's server ignores the credentials, so the stream really plays with them in the URL.
    source = CameraSource(
        server.url.replace("http://", f"http://admin:{SECRET}@"), trigger="every-frame", frame_timeout_s=1.0,
        queue_size=2,
    )  # fmt: skip
    statuses: list[str] = []
    parts: list[str] = []

    def seen(condition) -> bool:  # type: ignore[no-untyped-def]
        status = source.status()
        statuses.append(status.message)
        while (part := source.next_part(0.0)) is not None:
            parts.append(part.source_ref + (part.error or ""))
        return bool(condition(status))

    try:
        _wait_for(lambda: seen(lambda s: s.online and s.frames > 3), 10)
        server.kill()
        _wait_for(lambda: seen(lambda s: not s.online), 3)
        server.start()
        _wait_for(lambda: seen(lambda s: s.online and s.reconnects == 1), 5)
        shown = _shown_texts(source, statuses, parts)
    finally:
        source.close()
        server.kill()
    assert any("offline" in m for m in statuses) and any("online" in m for m in statuses[-1:])
    assert parts and all(p.startswith("camera:http://***@127.0.0.1:") for p in parts)
    _assert_secret_hidden(shown, caplog, capfd)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
        ("rtsp://token@10.0.0.5/stream1", "rtsp://***@10.0.0.5/stream1"),
        ("rtsp://u:ab#cd@10.0.0.5/x", "rtsp://***@10.0.0.5/x"),  # a raw "#" in the password
        ("rtsp://u:p@ss@10.0.0.5/x", "rtsp://***@10.0.0.5/x"),
        ("http://cam/video.cgi?user=admin&PWD=s3cret&res=1", "http://cam/video.cgi?user=admin&PWD=***&res=1"),
        ("http://127.0.0.1:8080/cam.mjpg", "http://127.0.0.1:8080/cam.mjpg"),
        ("http://cam/snap/a@b.jpg", "http://cam/snap/a@b.jpg"),  # an "@" in the path is no password
    ],
)
def test_redact_url_hides_every_form_of_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_probe_command_reports_the_parts_of_a_recorded_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    video = write_video(tmp_path / "line.avi", conveyor_frames(2, step_px=8))
    assert main(["probe", f"video:{video}", "--seconds", "20"]) == 0
    out, err = capsys.readouterr()
    assert out.count("part video:") == 2 and "2 parts (0 not inspectable)" in err
