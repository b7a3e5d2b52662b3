"""Where verdicts go besides the visual log: the line's PLC, MES or a script reading stdout.

An output gets every committed decision (``publish``) and every change of the source's state
(``status``), on the station's thread, after the row is committed. It must not block the station
for long and must not raise: a broken output is logged and counted, never a reason to stop
inspecting. Each output is optional and several can run at once.

Built in (``open_output(spec)``):

- ``jsonl`` (or ``stdout``): one JSON line per part on standard output.
- ``mqtt://[USER[:PASSWORD]@]HOST[:PORT][/BASE_TOPIC]``: one message per part on
  ``BASE_TOPIC/decision`` (QoS 1) and the station's state, retained, on ``BASE_TOPIC/status``
  (also the broker's last will, so a crashed station shows as offline). ``mqtts://`` uses TLS.

Adding another output (OPC UA, a PLC over Modbus or Profinet, a digital I/O card): write a class
with ``publish(item)``, ``status(status)`` and ``close()`` (see ``Output``), doing its network
I/O on its own thread or with a short time-out, build its message from ``decision_payload`` so
every output says the same thing, and add its URL scheme to ``open_output``.
"""

from __future__ import annotations

from typing import Any, Protocol

from core.common.types import InspectedPart
from core.sources.base import SourceStatus


class Output(Protocol):
    name: str

    def publish(self, item: InspectedPart) -> None:
        """A decision was committed. Returns quickly; never raises."""
        ...

    def status(self, status: SourceStatus) -> None:
        """The source's state changed (camera offline, back online, ...)."""
        ...

    def close(self) -> None:
        """Deliver what is pending (briefly) and let go of connections."""
        ...


def decision_payload(item: InspectedPart) -> dict[str, Any]:
    """What every output says about one part (JSON-ready)."""
    d = item.decision
    return {
        "part_id": d.part_id,
        "station": d.station,
        "time": d.created_at.isoformat(),
        "source": d.source_ref,
        "verdict": d.verdict.value,
        "score": None if d.score is None else round(d.score, 5),
        "threshold": d.threshold,
        "reason": d.reason,
        "latency_ms": None if d.latency_ms is None else round(d.latency_ms, 2),
        "model": (d.model_hash or "")[:12],
    }


def status_payload(status: SourceStatus, station: str) -> dict[str, Any]:
    return {
        "station": station,
        "online": status.online,
        "message": status.message,
        "since": status.since.isoformat(),
        "frames": status.frames,
        "parts": status.parts,
        "overflowed": status.overflowed,
        "reconnects": status.reconnects,
    }
