"""Part pictures composed off the GUI thread.

At the station's full rate a new part reaches the window every 15 ms or so. Blending its heatmap
on the photograph at display size (and a thumbnail for the history strip) takes several
milliseconds of OpenCV work per picture; done in ``paintEvent`` it stalled the GUI thread for
100 ms and more at a time. Views ask a :class:`PictureComposer` instead: one thread composes the
pictures (OpenCV releases the GIL, so it runs beside the GUI thread) and hands each back with
:attr:`PictureComposer.composed`; a view keeps showing its previous picture until the new one is
ready (a few milliseconds).

Only the newest request of each *slot* (a view, or a thumbnail) is kept: a view that asked for
three parts while the composer was busy gets the third, not all three.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Hashable
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from core.imaging.overlay import make_overlay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PictureRequest:
    """One picture to compose: ``image`` with ``heatmap`` blended, at ``size`` device pixels."""

    key: Hashable  # what the requester matches the composed picture with
    image: np.ndarray = field(compare=False, repr=False)
    heatmap: np.ndarray | None = field(compare=False, repr=False)
    size: tuple[int, int]
    score: float | None
    ratio: float  # the screen's device pixel ratio
    label: str = ""  # for the log, e.g. the part id


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage that owns a copy of an RGB uint8 array (the array may be freed afterwards)."""
    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, rgb.strides[0], QImage.Format.Format_RGB888).copy()


def compose_picture(request: PictureRequest) -> QImage:
    """The picture of ``request``; a malformed image gives a black one (and a log line) instead
    of an error, so one odd part never takes a view down. Safe on any thread (QImage, not QPixmap).
    """
    try:
        rgb = make_overlay(request.image, request.heatmap, size=request.size, score=request.score)
    except Exception:  # noqa: BLE001 - a malformed image must not take the window down
        log.exception("could not draw part %s", request.label)
        rgb = np.zeros((request.size[1], request.size[0], 3), np.uint8)
    image = rgb_to_qimage(rgb)
    image.setDevicePixelRatio(request.ratio)
    return image


class PictureComposer(QObject):
    """Composes :class:`PictureRequest` s on its own thread; :attr:`composed` gives ``(key, QImage)``.

    :meth:`request` and :meth:`retain` are called on the GUI thread; :attr:`composed` is emitted
    on the composer's thread and reaches receivers on the GUI thread queued, like any signal
    between threads. :meth:`close` stops the thread (the window calls it when it closes).
    """

    composed = Signal(object, object)  # key, QImage

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._wake = threading.Condition()
        self._pending: dict[Hashable, tuple[int, PictureRequest]] = {}  # slot -> (priority, newest)
        self._closed = False
        self.composed_count = 0
        self.thread_ids: set[int] = set()  # threads that composed (tests: never the GUI thread)
        self._thread = threading.Thread(target=self._run, name="picture-composer", daemon=True)
        self._thread.start()

    def request(self, slot: Hashable, request: PictureRequest, *, priority: int = 0) -> None:
        """Compose ``request`` for ``slot``, replacing a request of that slot not yet started.
        Lower ``priority`` goes first (the live view before the thumbnails)."""
        with self._wake:
            if self._closed:
                return
            self._pending[slot] = (priority, request)
            self._wake.notify()

    def retain(self, slots: Collection[Hashable], *, kind: type | None = None) -> None:
        """Drop the pending requests whose slot is not in ``slots`` (of slot type ``kind`` only,
        when given): e.g. thumbnails of parts that left the strip before they were drawn."""
        with self._wake:
            for slot in list(self._pending):
                if (kind is None or isinstance(slot, kind)) and slot not in slots:
                    del self._pending[slot]

    @property
    def pending(self) -> int:
        with self._wake:
            return len(self._pending)

    def close(self, timeout_s: float = 2.0) -> None:
        with self._wake:
            self._closed = True
            self._pending.clear()
            self._wake.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _next(self) -> PictureRequest | None:
        with self._wake:
            while not self._pending and not self._closed:
                self._wake.wait()
            if self._closed:
                return None
            slot = min(self._pending, key=lambda s: self._pending[s][0])
            return self._pending.pop(slot)[1]

    def _run(self) -> None:
        self.thread_ids.add(threading.get_ident())
        while (request := self._next()) is not None:
            image = compose_picture(request)
            with self._wake:
                if self._closed:
                    return
                self.composed_count += 1
            self.composed.emit(request.key, image)
