"""One MQTT message per part (paho-mqtt), for the line's PLC gateway, MES or dashboard.

Topics under the base topic (default ``inspector/<station>``):

- ``<base>/decision``: the decision as JSON (``core.outputs.decision_payload``), QoS 1.
- ``<base>/status``: the station's state as JSON, retained; the broker publishes ``online:
  false`` for the station (its last will) when the connection is lost without a goodbye.

paho's network thread does the I/O: ``publish`` only queues, so a slow or absent broker never
holds up an inspection. While the broker is unreachable messages wait in memory (at most
``max_queued`` of them; beyond that they are counted in ``dropped`` and logged, the visual log
still has every decision) and go out when paho has reconnected.
"""

from __future__ import annotations

import json
import logging
import ssl
from typing import Any

from core.common.types import InspectedPart
from core.outputs.base import decision_payload, status_payload
from core.sources.base import SourceStatus

log = logging.getLogger(__name__)


class MqttOutput:
    """Publishes decisions and status to an MQTT broker.

    Args:
        host, port: The broker.
        topic: Base topic.
        station: Station name, for the status messages.
        qos: QoS of the decision messages.
        username, password: Broker login, when it wants one.
        tls: Connect with TLS (system CA certificates).
        max_queued: Messages kept while the broker is unreachable.
        client_id: MQTT client id (default ``inspector-<station>``).
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        topic: str = "inspector/station-1",
        *,
        station: str = "station-1",
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        max_queued: int = 10_000,
        client_id: str | None = None,
        keepalive_s: int = 30,
    ) -> None:
        try:
            import paho.mqtt.client as mqtt
            from paho.mqtt.enums import CallbackAPIVersion
        except ImportError as exc:
            raise RuntimeError(
                "the MQTT output needs the 'paho-mqtt' package: pip install paho-mqtt"
            ) from exc
        self._mqtt = mqtt
        self.name = f"mqtt://{host}:{port}/{topic}"
        self.topic = topic.rstrip("/")
        self.station = station
        self.qos = qos
        self.published = 0
        self.dropped = 0
        self._last_status: dict[str, Any] | None = None
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"inspector-{station}",
            protocol=mqtt.MQTTv311,
        )
        if username:
            client.username_pw_set(username, password)
        if tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.max_queued_messages_set(max_queued)
        client.reconnect_delay_set(min_delay=1, max_delay=2)  # a line wants its PLC back soon
        client.will_set(
            f"{self.topic}/status",
            json.dumps({"station": station, "online": False, "message": "station connection lost"}),
            qos=1,
            retain=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client: Any = client
        # Asynchronous: the station starts even when the broker is down, and paho keeps trying.
        client.connect_async(host, port, keepalive=keepalive_s)
        client.loop_start()

    def publish(self, item: InspectedPart) -> None:
        payload = json.dumps(decision_payload(item), ensure_ascii=False)
        self._send(f"{self.topic}/decision", payload, qos=self.qos, retain=False)

    def status(self, status: SourceStatus) -> None:
        self._last_status = status_payload(status, self.station)
        self._send(
            f"{self.topic}/status", json.dumps(self._last_status, ensure_ascii=False), qos=1, retain=True
        )

    def close(self, timeout_s: float = 2.0) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            goodbye = {"station": self.station, "online": False, "message": "station stopped"}
            info = client.publish(f"{self.topic}/status", json.dumps(goodbye), qos=1, retain=True)
            # QoS 1 messages leave in order: once the goodbye is acknowledged, so is every decision.
            if info.rc == self._mqtt.MQTT_ERR_SUCCESS:
                info.wait_for_publish(timeout=timeout_s)
            if not info.is_published():
                log.warning(
                    "MQTT: broker unreachable at close; undelivered messages are lost (the log has them)"
                )
        except (RuntimeError, ValueError) as exc:
            log.warning("MQTT: not every message was delivered before closing: %s", exc)
        finally:
            client.disconnect()
            client.loop_stop()

    def _send(self, topic: str, payload: str, *, qos: int, retain: bool) -> None:
        client = self._client
        if client is None:
            return
        try:
            info = client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, RuntimeError) as exc:
            self.dropped += 1
            log.error("MQTT: cannot publish on %s: %s", topic, exc)
            return
        if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("MQTT: broker unreachable and the queue is full: %d messages dropped", self.dropped)
            return
        self.published += 1

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("MQTT: broker refused the connection: %s", reason_code)
            return
        log.info("MQTT: connected to %s", self.name)
        if self._last_status is not None:  # the broker may hold our last will: say we are back
            client.publish(f"{self.topic}/status", json.dumps(self._last_status), qos=1, retain=True)

    def _on_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("MQTT: connection to %s lost (%s); reconnecting", self.name, reason_code)
