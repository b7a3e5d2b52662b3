"""The what-if of a threshold, computed off the GUI thread (``core.reports.whatif``).

A :class:`WhatIfReader` lives on its own ``QThread`` with its own use of the visual log. The
threshold page asks it with a :class:`WhatIfRequest`; it answers with the figures and small
thumbnails of the parts that would flip (decoded and shrunk on its thread: only pixels cross).
Requests carry a number, so the page shows only the answer to its newest question.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

if TYPE_CHECKING:
    from core.reports.whatif import WhatIf
    from core.storage import VisualLog

log = logging.getLogger(__name__)

LogOpener = Callable[[], "VisualLog"]

THUMBNAIL_PX = 88
THUMBNAILS = 60  # flipped parts shown as pictures; the counts cover every one


@dataclass(frozen=True, slots=True)
class WhatIfRequest:
    """One question: the proposed threshold over a window (a name, or a range when ``since`` is set)."""

    number: int
    proposed: float
    window: str = "24h"  # "shift", "24h", "7d"
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class WhatIfAnswer:
    request: WhatIfRequest
    result: WhatIf
    thumbnails: dict[str, np.ndarray]  # part id -> small grey image


class WhatIfReader(QObject):
    """Computes what-ifs on its own thread (move it there; call ``compute`` through a queued signal).

    Signals:
        computed(object): a :class:`WhatIfAnswer`.
        failed(object, str): the request and what went wrong, in words.
    """

    computed = Signal(object)
    failed = Signal(object, str)

    def __init__(self, open_log: Callable[[], VisualLog]) -> None:
        super().__init__()
        self._open_log = open_log
        self._log: VisualLog | None = None

    @Slot(object)
    def compute(self, request: WhatIfRequest) -> None:
        from core.reports import DEFAULT_PLAN, ShiftPlan
        from core.reports.whatif import what_if, window

        try:
            if self._log is None:
                self._log = self._open_log()
            visual_log = self._log
            if request.since is not None:
                since, until = request.since, request.until or visual_log.now()
            else:
                stored = visual_log.shift_plan()
                plan = ShiftPlan.from_definitions(stored) if stored else ShiftPlan.parse(DEFAULT_PLAN)
                since, until = window(request.window, visual_log.now(), plan)
            result = what_if(visual_log, request.proposed, since=since, until=until)
            thumbnails = {
                f.part_id: thumb
                for f in result.flipped[:THUMBNAILS]
                if f.image_path and (thumb := _thumbnail(visual_log, f.image_path)) is not None
            }
        except Exception as exc:  # shown on the page; the reader stays usable
            log.exception("the what-if failed")
            self.failed.emit(request, f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
            return
        self.computed.emit(WhatIfAnswer(request, result, thumbnails))

    @Slot()
    def close(self) -> None:
        if self._log is not None:
            try:
                self._log.close()
            finally:
                self._log = None


def _thumbnail(visual_log: VisualLog, relative: str) -> np.ndarray | None:
    try:
        image = cv2.imread(str(visual_log.media_path(relative)), cv2.IMREAD_GRAYSCALE)
    except (ValueError, OSError):
        return None
    if image is None:
        return None  # removed by retention, or damaged: the list says so without a picture
    scale = THUMBNAIL_PX / max(image.shape)
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
