"""Opening an output from its spec (``jsonl``, ``mqtt://...``)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from core.outputs.base import Output


def open_output(spec: str, *, station: str) -> Output:
    """An output from its spec (see the module docstring).

    Raises:
        ValueError: Unknown kind of output.
        RuntimeError: The output needs a package that is not installed.
    """
    if spec in ("jsonl", "stdout", "json"):
        from core.outputs.jsonl import JsonLinesOutput

        return JsonLinesOutput()
    parts = urlsplit(spec)
    if parts.scheme in ("mqtt", "mqtts"):
        from core.outputs.mqtt import MqttOutput

        if not parts.hostname:
            raise ValueError(f"MQTT output {spec!r} names no broker host")
        return MqttOutput(
            parts.hostname,
            parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            unquote(parts.path.strip("/")) or f"inspector/{station}",
            station=station,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "mqtts",
        )
    raise ValueError(f"unknown output {spec!r}; use jsonl or mqtt://HOST[:PORT][/TOPIC]")
