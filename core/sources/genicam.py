"""Industrial cameras through GenICam/GenTL (the optional ``harvesters`` package).

``genicam:/opt/vendor/producer.cti`` takes the first device the GenTL producer lists;
``genicam:/opt/vendor/producer.cti#SERIAL`` the one with that serial number. The camera runs in
hardware-trigger mode as it is configured (the line's light barrier triggers it), so every
buffer is one part (``EveryFrame``); ``trigger="presence"`` turns a free-running camera into
parts as for OpenCV cameras.

It shares everything else with ``CameraSource`` (``core.sources.live``): grab thread, time-outs,
reconnection, the bounded queue and its recorded overflow. A gap in the camera's frame ids means
frames the camera or the transport lost; each lost frame becomes a not-inspected part, so a
trigger that got no image is counted and logged.

UNTESTED here: no GenTL producer or camera is available to the project's tests. The code follows
harvesters 1.4 (``Harvester.add_file/update/create``, ``ImageAcquirer.start/fetch/stop/destroy``,
``genicam.gentl.TimeoutException``); try it against the vendor's producer (or the GenICam
reference ``TLSimu`` producer) before relying on it on a line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from core.sources.live import LiveSource, SourceError
from core.sources.trigger import EveryFrame

log = logging.getLogger(__name__)


class GenICamSource(LiveSource):
    """A GenICam camera through a GenTL producer (``.cti`` file).

    Args:
        cti: The GenTL producer file of the camera vendor.
        serial: Serial number of the camera; None takes the first one listed.
        options: See ``LiveSource``. The trigger defaults to ``EveryFrame`` (hardware trigger);
            ``stale_after_s`` defaults to 0 (a triggered camera sends nothing between parts,
            and an idle line is not an outage, so ``frame_timeout_s`` is long too).
    """

    def __init__(self, cti: Path, *, serial: str | None = None, **options: Any) -> None:
        try:
            from harvesters.core import Harvester  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "GenICam cameras need the optional 'harvesters' package: pip install harvesters"
            ) from exc
        self.cti = Path(cti)
        if not self.cti.is_file():
            raise FileNotFoundError(f"no GenTL producer file {self.cti}")
        self.serial = serial
        options.setdefault("trigger", EveryFrame())
        options.setdefault("stale_after_s", 0.0)
        options.setdefault("frame_timeout_s", 3600.0)
        name = f"GenICam {serial or 'first camera'} ({self.cti.name})"
        super().__init__(description=name, source_ref=f"genicam:{serial or self.cti.name}", **options)
        self._harvester: Any = None
        self._acquirer: Any = None
        self._last_frame_id: int | None = None
        self._start()

    @classmethod
    def from_spec(cls, target: str, **options: Any) -> GenICamSource:
        cti, _, serial = target.partition("#")
        return cls(Path(cti), serial=serial or None, **options)

    def _connect(self) -> None:
        from harvesters.core import Harvester

        harvester = Harvester()
        try:
            harvester.add_file(str(self.cti))
            harvester.update()
            acquirer = harvester.create({"serial_number": self.serial} if self.serial else 0)
            acquirer.start()
        except Exception as exc:
            harvester.reset()
            raise SourceError(f"cannot open the camera: {exc}") from exc
        self._harvester, self._acquirer = harvester, acquirer
        self._last_frame_id = None

    def _read(self) -> np.ndarray | None:
        from genicam.gentl import TimeoutException

        while True:
            try:
                # Short waits so that stop() is honoured; an idle line just loops here.
                buffer = self._acquirer.fetch(timeout=0.5)
                break
            except TimeoutException:
                if self._stopping.is_set():
                    return None
            except Exception as exc:
                raise SourceError(f"the camera stopped sending: {exc}") from exc
        with buffer:
            self._count_lost(getattr(buffer, "frame_id", None))
            component = buffer.payload.components[0]
            channels = int(component.num_components_per_pixel or 1)
            shape = (
                (component.height, component.width)
                if channels == 1
                else (component.height, component.width, channels)
            )
            # Copy: the buffer goes back to the producer when the block ends.
            return np.array(component.data.reshape(shape), copy=True)

    def _count_lost(self, frame_id: int | None) -> None:
        if frame_id is None:
            return
        previous, self._last_frame_id = self._last_frame_id, int(frame_id)
        if previous is None or frame_id <= previous + 1:
            return
        from datetime import UTC, datetime

        from core.common.types import Part

        lost_parts = [
            Part(
                source_ref=f"{self._ref}#{lost}",
                arrived_at=datetime.now(UTC),
                image=None,
                error="not inspected: the camera was triggered but its image was lost (frame id gap)",
            )
            for lost in range(previous + 1, int(frame_id))
        ]
        with self._cond:
            self._overflow.extend(lost_parts)
            self._cond.notify_all()

    def _disconnect(self) -> None:
        acquirer, harvester = self._acquirer, self._harvester
        self._acquirer = self._harvester = None
        try:
            if acquirer is not None:
                acquirer.stop()
                acquirer.destroy()
        finally:
            if harvester is not None:
                harvester.reset()
