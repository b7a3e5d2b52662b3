"""The MQTT output against a real mosquitto on 127.0.0.1: one message per part, through a broker outage."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import cv2
import pytest
from source_helpers import free_port

from core.outputs import open_output
from core.station.config import SourceOptions, StationConfig
from core.station.runtime import build_runtime
from core.synth.parts import part_image

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").is_file() else None
)
pytestmark = pytest.mark.skipif(
    MOSQUITTO is None,
    reason="mosquitto is not installed (apt-get install mosquitto): no broker to test against",
)
mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")


class Broker:
    """mosquitto with persistence, so a subscriber's session (and its queued messages) survives a restart."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "mosquitto.conf"
        # As root, mosquitto would drop to the "mosquitto" user, which cannot write in pytest's
        # private temporary folder: the persistent session would be lost at the restart.
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{run_as}"
            f"persistence true\npersistence_location {folder}/\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        assert MOSQUITTO is not None
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # a clean stop writes the persistent sessions
            self.proc.wait(timeout=10)
            self.proc = None


class Subscriber:
    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, dict, bool]] = []  # type: ignore[type-arg]
        self.lock = threading.Lock()
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="line-plc", clean_session=False
        )
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        client.on_message = self._on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client

    def _on_message(self, _client, _userdata, message) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            self.messages.append((message.topic, json.loads(message.payload), bool(message.retain)))

    def decisions(self) -> list[dict]:  # type: ignore[type-arg]
        with self.lock:
            return [m for t, m, _ in self.messages if t.endswith("/decision")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(condition, limit_s: float, what=lambda: "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out; {what()}"
        time.sleep(0.05)


def test_one_message_per_part_through_a_broker_restart(tiny_model: Path, tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, "inspector/line-1/#")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    db = tmp_path / "log.sqlite"
    runtime = build_runtime(
        StationConfig(
            source=f"hotfolder:{inbox}",
            model=tiny_model,
            db_url=f"sqlite:///{db}",
            media_root=tmp_path / "media",
            station_name="line-1",
            source_options=SourceOptions(settle_s=0.1),
        )
    )
    output = open_output(f"mqtt://127.0.0.1:{broker.port}", station="line-1")
    runtime.listeners.append(output.publish)
    runtime.status_listeners.append(output.status)

    def feed_and_inspect(index: int) -> None:
        cv2.imwrite(
            str(inbox / f"part_{index}.png"), part_image(4, index, defective=bool(index % 2), size=96)[0]
        )
        deadline = time.monotonic() + 15
        while runtime.parts_done <= index and time.monotonic() < deadline:
            runtime.process_next(0.1)
        assert runtime.parts_done == index + 1

    try:
        feed_and_inspect(0)
        _wait(lambda: len(subscriber.decisions()) >= 1, 10)
        broker.stop()
        started = time.monotonic()
        feed_and_inspect(1)  # the broker is down: the station goes on regardless
        feed_and_inspect(2)
        assert time.monotonic() - started < 10
        broker.start()
        # QoS 1 is "at least once": a message may come twice around a reconnection.
        _wait(
            lambda: len({m["part_id"] for m in subscriber.decisions()}) == 3,
            20,
            lambda: f"received {subscriber.messages}, output published {output.published}",  # type: ignore[attr-defined]
        )
    finally:
        runtime.close()
        output.close()
        subscriber.close()
        broker.stop()
    with sqlite3.connect(db) as conn:
        logged = [r[0] for r in conn.execute("SELECT part_id FROM decisions ORDER BY created_at")]
    received = subscriber.decisions()
    assert list(dict.fromkeys(m["part_id"] for m in received)) == logged  # each part, in order
    assert {m["verdict"] for m in received} <= {"good", "bad"} and all(
        m["station"] == "line-1" for m in received
    )
    statuses = [m for t, m, _ in subscriber.messages if t.endswith("/status")]
    assert statuses and statuses[0]["online"] is True


def test_unknown_outputs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown output"):
        open_output("opcua://plc:4840", station="s")
