"""Pictures composed off the GUI thread: the live view, the held part and the history strip ask
the window's composer, and never show one part's picture in another part's frame."""

from __future__ import annotations

import dataclasses
import functools
import threading
import time

import numpy as np
from gui_fakes import FakeLine, make_inspected_part
from PySide6.QtGui import QImage
from test_gui_window import _near as near
from test_gui_window import _pixels as _rgb

from core.common.types import Verdict
from inspector_gui import theme
from inspector_gui.part_pictures import render_view
from inspector_gui.picture_composer import PictureComposer
from inspector_gui.widgets import PartView


def _near(rgb: np.ndarray, colour: str) -> int:
    return near(rgb, colour, tolerance=30)


def test_the_window_composes_every_picture_on_the_composer_thread(qtbot, open_station):
    parts = [make_inspected_part(i, Verdict.BAD if i % 3 == 0 else Verdict.GOOD) for i in range(9)]
    window = open_station(FakeLine(parts))
    qtbot.waitUntil(lambda: window.shown_part is parts[-1], timeout=3000)
    qtbot.waitUntil(
        lambda: (
            window.part_view.picture_ready
            and window.held_view.picture_ready
            and window.history_strip.pictures_ready()
        ),
        timeout=3000,
    )
    composer = window.composer
    # the live part, the held bad part, and the thumbnails of the strip
    assert composer.composed_count >= 3
    assert composer.thread_ids and threading.get_ident() not in composer.thread_ids
    window.close()
    assert not composer._thread.is_alive()  # closing the window stops the composer


def test_a_view_keeps_the_part_before_whole_until_the_new_picture_is_composed(qtbot):
    composer = PictureComposer()
    view = PartView()
    view.set_composer(composer)
    view.resize(480, 400)
    qtbot.addWidget(view)
    view.show()
    bad, good = make_inspected_part(0, Verdict.BAD), make_inspected_part(1, Verdict.GOOD)
    view.set_part(bad)
    view.grab()
    qtbot.waitUntil(lambda: view.picture_ready, timeout=3000)
    bad_frame = _near(_rgb(view.grab()), theme.BAD)
    assert bad_frame > 500
    # The good part's picture is being composed: until it comes, the bad part is shown whole,
    # its picture in its own (bad) frame, never the good part's picture in a bad frame or the
    # reverse. No event is processed between the two lines, so the composed picture cannot come.
    view.set_part(good)
    before = _rgb(view.grab())
    assert not view.picture_ready
    assert _near(before, theme.BAD) == bad_frame and _near(before, theme.GOOD) < 50
    qtbot.waitUntil(lambda: view.picture_ready, timeout=3000)
    after = _rgb(view.grab())
    assert _near(after, theme.GOOD) > 500 and _near(after, theme.BAD) < 50
    composer.close()


def test_a_busy_composer_draws_only_the_newest_request_of_a_view(qtbot):
    composer = PictureComposer()
    composed: list[object] = []
    composer.composed.connect(lambda key, image: composed.append(key))
    started = threading.Event()

    def slow(index: int) -> QImage:
        started.set()
        time.sleep(0.2)  # the first job is still running while the others are asked for
        return QImage(4, 4, QImage.Format.Format_RGB32)

    composer.request("live", 0, functools.partial(slow, 0))
    assert started.wait(3)
    for index in range(1, 20):
        composer.request("live", index, functools.partial(slow, index))
    qtbot.waitUntil(lambda: composer.pending == 0 and composed[-1:] == [19], timeout=5000)
    # the first (already running) and the newest; the 18 in between were replaced unseen
    assert composed == [0, 19]
    composer.close()


def test_a_failing_picture_is_logged_and_given_back_as_none(qtbot, caplog):
    composer = PictureComposer()
    composed: list[tuple[object, object]] = []
    composer.composed.connect(lambda key, result: composed.append((key, result)))
    broken = make_inspected_part(0, Verdict.GOOD)
    broken = dataclasses.replace(broken, image=np.zeros((0, 5), np.uint8))  # no rows
    # A malformed photograph is drawn black by the picture code itself...
    composer.request(
        "live", "odd", functools.partial(render_view, broken, 200, 150, 1.0, heat=True, legend=True)
    )
    # ... and a job that raises gives None (and a log line), and the composer goes on.
    composer.request("thumb", "raises", lambda: 1 / 0)
    qtbot.waitUntil(lambda: len(composed) == 2, timeout=3000)
    results = dict(composed)
    image, legend = results["odd"]
    assert (image.width(), image.height()) == (200, 150)
    assert results["raises"] is None
    assert "could not draw raises" in caplog.text
    composer.close()


def test_a_started_station_hands_the_gil_over_often_and_freezes_its_start(qtbot, open_station):
    import sys

    from inspector_gui.worker import GIL_SWITCH_INTERVAL_S

    window = open_station(FakeLine([make_inspected_part(0, Verdict.GOOD)]))
    qtbot.waitUntil(lambda: window.shown_part is not None, timeout=3000)
    # the station's threads share the interpreter with the window: 1 ms hand-overs, not 5 ms
    assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL_S
    # and what was alive at the start (the model, the runtime) is out of the collector's walks
    import gc

    assert gc.get_freeze_count() > 1000
