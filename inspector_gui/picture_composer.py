"""Part pictures composed off the GUI thread.

At the station's full rate a new part reaches the window every 15 ms or so. Blending its heatmap
on the photograph at display size, framing it, and drawing the history strip's tiles took the GUI
thread 65-134 ms per repaint at 65 parts/s (the window stalled for longer than that). Views ask a
:class:`PictureComposer` instead: one thread draws the pictures (:mod:`.part_pictures`; OpenCV
releases the GIL, so much of it runs beside the GUI thread) and hands each back with
:attr:`PictureComposer.composed`; the widgets only copy finished pictures to the screen, and show
what they showed before until the new picture is ready (a few milliseconds).

Only the newest request of each *slot* (a view, or a thumbnail) is kept: a view that asked for
three parts while the composer was busy gets the third, not all three.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Hashable

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


class PictureComposer(QObject):
    """Runs drawing jobs on its own thread; :attr:`composed` gives ``(key, result)``.

    A job is a callable that draws into a ``QImage`` (never a ``QPixmap``, which only the GUI
    thread may touch) and returns it, with what the requester needs besides (see
    :mod:`inspector_gui.part_pictures`). :meth:`request` and :meth:`retain` are called on the GUI
    thread; :attr:`composed` is emitted on the composer's thread and reaches receivers on the GUI
    thread queued, like any signal between threads; a job that raises gives ``(key, None)``.
    :meth:`close` stops the thread (the window calls it when it closes).
    """

    composed = Signal(object, object)  # key, the job's result (None: it failed)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._wake = threading.Condition()
        # slot -> (priority, key, job): the newest request of each slot
        self._pending: dict[Hashable, tuple[int, Hashable, Callable[[], object]]] = {}
        self._closed = False
        self.composed_count = 0
        self.thread_ids: set[int] = set()  # threads that composed (tests: never the GUI thread)
        self._thread = threading.Thread(target=self._run, name="picture-composer", daemon=True)
        self._thread.start()

    def request(self, slot: Hashable, key: Hashable, job: Callable[[], object], *, priority: int = 0) -> None:
        """Run ``job`` for ``slot``, replacing a request of that slot not yet started; its result
        comes back with ``key``. Lower ``priority`` goes first (the live view before the strip)."""
        with self._wake:
            if self._closed:
                return
            self._pending[slot] = (priority, key, job)
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

    def _next(self) -> tuple[Hashable, Callable[[], object]] | None:
        with self._wake:
            while not self._pending and not self._closed:
                self._wake.wait()
            if self._closed:
                return None
            slot = min(self._pending, key=lambda s: self._pending[s][0])
            _, key, job = self._pending.pop(slot)
            return key, job

    def _run(self) -> None:
        self.thread_ids.add(threading.get_ident())
        while (item := self._next()) is not None:
            key, job = item
            try:
                result = job()
            except Exception:  # noqa: BLE001 - one odd picture must not stop the others
                log.exception("could not draw %s", key)
                result = None
            with self._wake:
                if self._closed:
                    return
                self.composed_count += 1
            self.composed.emit(key, result)


class ComposerClient:
    """A widget whose pictures a :class:`PictureComposer` draws (mixed in before ``QWidget``):
    :meth:`set_composer` connects the widget's ``_on_composed(key, result)`` to it."""

    _composer: PictureComposer | None = None

    def set_composer(self, composer: PictureComposer | None) -> None:
        """Draw on ``composer``'s thread (None: on the GUI thread, when the widget needs it)."""
        if self._composer is not None:
            self._composer.composed.disconnect(self._on_composed)
        self._composer = composer
        if composer is not None:
            composer.composed.connect(self._on_composed)

    def _on_composed(self, key: object, result: object) -> None:
        raise NotImplementedError
