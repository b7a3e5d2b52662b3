"""Reviewing on the live screen: the held bad part, arrow keys, a frozen history strip, the
review timeout, the verdict as shape as well as colour."""

from __future__ import annotations

import numpy as np
from gui_fakes import FakeLine, make_inspected_part
from PySide6.QtCore import Qt

from core.common.types import Verdict
from inspector_gui import theme
from inspector_gui.main_window import StationWindow


def _active(qtbot, window: StationWindow) -> None:
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)  # window shortcuts need an active window


def test_the_last_bad_part_is_held_beside_the_live_one_until_acknowledged(qtbot, open_station):
    parts = [make_inspected_part(0, Verdict.GOOD), make_inspected_part(1, Verdict.BAD, 0.93)]
    parts += [make_inspected_part(i, Verdict.GOOD) for i in range(2, 8)]
    window = open_station(FakeLine(parts))
    qtbot.waitUntil(lambda: window.counters.total == 8, timeout=3000)
    qtbot.waitUntil(lambda: window.shown_part is parts[-1], timeout=3000)
    # Six good parts later the bad one is still on screen, beside the live part.
    assert window.held_part is parts[1]
    assert window.held_panel.isVisible() and window.held_view.part is parts[1]
    assert "0.930" in window.held_info.text()
    _active(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_B)
    assert window.held_part is None and not window.held_panel.isVisible()
    # A new bad part is held again.
    bad = make_inspected_part(8, Verdict.BAD)
    window._on_worker_inspected(bad)
    qtbot.waitUntil(lambda: window.held_panel.isVisible(), timeout=1000)
    qtbot.mouseClick(window.held_ack_button, Qt.MouseButton.LeftButton)
    assert window.held_part is None


def test_arrow_keys_move_through_a_frozen_history_and_back_to_live(qtbot, open_station):
    parts = [make_inspected_part(i, Verdict.GOOD) for i in range(5)]
    window = open_station(FakeLine(parts))
    qtbot.waitUntil(lambda: window.shown_part is parts[-1], timeout=3000)
    _active(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_Left)  # from live: the newest part, held still
    assert not window.is_live and window.shown_part is parts[4]
    qtbot.keyClick(window, Qt.Key.Key_Left)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert window.shown_part is parts[2]
    # Parts keep coming; the strip under the operator's finger does not move.
    strip_before = [t.part for t in window.history_strip.thumbnails()]
    for index in range(5, 8):
        window._on_worker_inspected(make_inspected_part(index, Verdict.GOOD))
    window.render_now()
    assert [t.part for t in window.history_strip.thumbnails()] == strip_before
    assert window.shown_part is parts[2] and window.history[0].decision.part_id != parts[4].decision.part_id
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.shown_part is parts[3]
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.keyClick(window, Qt.Key.Key_Right)  # past the newest: live again, strip thawed
    assert window.is_live
    window.render_now()
    qtbot.waitUntil(window.history_strip.pictures_ready, timeout=3000)  # tiles drawn off the GUI thread
    assert window.history_strip.thumbnails()[0].part is window.history[0]


def test_a_review_returns_to_live_after_the_timeout(qtbot, open_station):
    parts = [make_inspected_part(i, Verdict.GOOD) for i in range(3)]
    window = open_station(FakeLine(parts), review_timeout_s=0.4)
    qtbot.waitUntil(lambda: window.counters.total == 3, timeout=3000)
    window.show_part(parts[0])
    assert not window.is_live
    qtbot.wait(200)
    window.review_newer()  # a touch restarts the timeout
    assert not window.is_live and window.shown_part is parts[1]
    qtbot.wait(250)
    assert not window.is_live  # 0.45 s after the first step, 0.25 s after the last
    qtbot.waitUntil(lambda: window.is_live, timeout=2000)
    assert window.shown_part is parts[-1]


def test_verdicts_read_without_colour(qtbot):
    window = StationWindow()
    qtbot.addWidget(window)
    window.show()
    window._on_worker_inspected(make_inspected_part(0, Verdict.BAD))
    window.render_now()
    assert window.verdict_banner.glyph() == theme.VERDICT_GLYPHS[Verdict.BAD] == "✗"
    window.acknowledge_bad_part()
    window._on_worker_inspected(make_inspected_part(1, Verdict.GOOD))
    window._banner_part = None  # past the bad part's time on the banner
    window.render_now()
    qtbot.waitUntil(window.history_strip.pictures_ready, timeout=3000)
    assert window.verdict_banner.glyph() == "✓"
    # The thumbnails' borders differ in line style, not only in colour: the good one is solid,
    # the bad one dashed (its left edge alternates between line and gap), even in grey.
    newest, older = window.history_strip.thumbnails()[:2]
    assert newest.part.decision.verdict is Verdict.GOOD and older.part.decision.verdict is Verdict.BAD
    edge_good, edge_bad = (_grey(t.grab())[20:90, 4].astype(int) for t in (newest, older))
    assert edge_good.std() < 3 and edge_bad.std() > 10
    window.close()


def _grey(pixmap) -> np.ndarray:
    image = pixmap.toImage().convertToFormat(pixmap.toImage().Format.Format_Grayscale8)
    array = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return array[:, : image.width()]


def test_the_banner_does_not_flicker_at_10_parts_a_second(qtbot, open_station):
    # Good and bad alternating at 10 parts/s: shown as they come, the banner would change colour
    # at nearly every repaint (15-29 times in 3 s); a bad verdict stays at least BAD_DWELL_S (1 s).
    parts = [
        make_inspected_part(i, Verdict.BAD if i % 2 else Verdict.GOOD, size=(160, 120)) for i in range(2)
    ]
    window = open_station(FakeLine(parts, endless=True, delay_s=0.1))
    qtbot.waitUntil(lambda: window.counters.total >= 3, timeout=3000)
    seen: list[Verdict | None] = []
    for _ in range(30):  # 3 s, one look per repaint
        qtbot.wait(100)
        seen.append(window.verdict_banner.verdict)
    changes = sum(a is not b for a, b in zip(seen, seen[1:], strict=False))
    assert window.counters.total >= 20  # the parts did come at about 10/s
    assert Verdict.BAD in seen and changes <= 8, seen


def test_a_good_part_that_came_during_a_bad_parts_dwell_is_shown_when_the_dwell_ends(qtbot, open_station):
    # A bad part keeps the banner for BAD_DWELL_S; the good part after it must take the banner
    # then, even when no further part arrives to ask for a repaint.
    bad, good = (
        make_inspected_part(i, v, size=(160, 120)) for i, v in enumerate((Verdict.BAD, Verdict.GOOD))
    )
    window = open_station(FakeLine([bad, good], delay_s=0.2))
    qtbot.waitUntil(lambda: window.counters.total == 2, timeout=3000)
    qtbot.waitUntil(lambda: window.shown_part is good, timeout=3000)
    assert window.verdict_banner.verdict is Verdict.GOOD


def test_a_part_only_the_good_only_model_called_bad_shows_its_anomaly_map_labelled_as_such(
    qtbot, open_station, painted
):
    import dataclasses

    part = make_inspected_part(0, Verdict.BAD, score=0.08, size=(400, 300))
    decision = dataclasses.replace(part.decision, anomaly_score=3.1, anomaly_threshold=2.0, fired="anomaly")
    anomaly_part = dataclasses.replace(part, decision=decision)
    window = open_station(FakeLine([anomaly_part]))
    qtbot.waitUntil(lambda: window.shown_part is anomaly_part, timeout=3000)
    window.resize(1600, 1000)
    painted(window.part_view)  # the legend is drawn with the picture
    assert window.part_view.legend_caption == "UNLIKE GOOD PARTS"
    assert "unlike good parts: anomaly 3.10 ≥ 2.00" in window.verdict_banner.reason()
    # A part the classifier called bad keeps the defect-evidence legend.
    classifier_part = make_inspected_part(1, Verdict.BAD, size=(400, 300))
    window.part_view.set_part(classifier_part)
    painted(window.part_view)
    assert window.part_view.legend_caption == "DEFECT EVIDENCE"
