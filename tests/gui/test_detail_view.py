"""The detail page on a real SQLite log: the part, its heatmap and zoom, and a review from it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from history_log import KnownLog, make_known_log
from PySide6.QtCore import Qt
from sqlalchemy import create_engine, text

from core.common.types import Verdict
from inspector_gui.detail_view import DetailView
from inspector_gui.history_model import ReaderThread


@pytest.fixture
def known(tmp_path: Path) -> KnownLog:
    return make_known_log(tmp_path, parts_per_station=8)


@pytest.fixture
def reader(known: KnownLog) -> Iterator[ReaderThread]:
    thread = ReaderThread(known.open)
    yield thread
    thread.shutdown()


def _rows(known: KnownLog, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_engine(known.url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def _open(qtbot, view: DetailView, part_id: str) -> None:
    # Waits on the page, never on the reader's own signals: they are emitted on its thread, and
    # pytest-qt's timer would be stopped from there.
    view.open_part(part_id)
    qtbot.waitUntil(
        lambda: view.detail is not None and view.detail.decision.part_id == part_id, timeout=10_000
    )


def test_the_part_is_shown_with_its_facts_heatmap_and_zoom(
    qtbot, known: KnownLog, reader: ReaderThread
) -> None:
    view = DetailView(reader, actor=lambda: None)
    qtbot.addWidget(view)
    view.show()
    reviewed = next(d for d in known.decisions[::4] if d.image_path is not None)
    _open(qtbot, view, reviewed.part_id)
    detail = view.detail
    assert detail is not None and detail.image is not None and detail.heatmap is not None
    assert view.fields["Score"].text() == f"{reviewed.score:.4f}"
    assert view.fields["Station"].text() == reviewed.station
    assert view.fields["Source"].text() == reviewed.source_ref
    assert "tiny" in view.fields["Model"].text()
    assert view.review_list.count() == 1 and "anna: " in view.review_list.item(0).text()
    assert "check 0" in view.review_list.item(0).text()  # the comment given

    # Heatmap on, off, fainter: the picture drawn changes each time.
    def picture() -> np.ndarray:
        image = view.view._item.pixmap().toImage()
        return np.array(image.constBits(), copy=True)  # type: ignore[call-overload]

    with_heat = picture()
    view.heatmap_box.setChecked(False)
    without = picture()
    view.heatmap_box.setChecked(True)
    view.opacity.setValue(10)
    faint = picture()
    assert not np.array_equal(with_heat, without) and not np.array_equal(with_heat, faint)
    zoom = view.view.zoom
    qtbot.mouseClick(view.zoom_in, Qt.MouseButton.LeftButton)
    assert view.view.zoom == pytest.approx(zoom * 1.25)

    # A part that was not inspected: its reason, no picture, nothing to confirm.
    skipped = next(d for d in known.decisions if d.verdict is Verdict.NOT_INSPECTED)
    _open(qtbot, view, skipped.part_id)
    assert view.fields["Reason"].text() == "torn frame" and not view.confirm_button.isEnabled()
    assert threading.get_ident() not in reader.reader.thread_ids


def test_a_review_is_a_linked_row_and_the_decision_stays(
    qtbot, known: KnownLog, reader: ReaderThread
) -> None:
    current: dict[str, object | None] = {"actor": None}
    view = DetailView(reader, actor=lambda: current["actor"])
    qtbot.addWidget(view)
    view.show()
    part = next(
        d
        for d in known.decisions
        if d.verdict is Verdict.GOOD and d.part_id not in {x.part_id for x in known.decisions[::4]}
    )
    decision_sql = "SELECT * FROM decisions WHERE part_id = :p"
    before = _rows(known, decision_sql, p=part.part_id)
    _open(qtbot, view, part.part_id)

    # Nobody logged in: the page says so and nothing is written.
    qtbot.mouseClick(view.bad_button, Qt.MouseButton.LeftButton)
    assert "Log in" in view.message and "Nobody is logged in" in view.signer_label.text()
    # An operator: core refuses, and records the refusal.
    current["actor"] = known.actor("otto")
    qtbot.mouseClick(view.bad_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.message.startswith("⚠"), timeout=10_000)
    assert "otto" in view.message and "review" in view.message
    assert _rows(known, "SELECT count(*) FROM reviews WHERE part_id = :p", p=part.part_id) == [(0,)]
    denied = _rows(known, "SELECT user_name, event FROM access_events WHERE event = 'denied'")
    assert ("otto", "denied") in denied

    # A supervisor overrides it with a comment: a new linked row; the decision row is unchanged.
    current["actor"] = known.actor("anna")
    view.comment.setText("scratch under the rim")
    with qtbot.waitSignal(view.reviewed, timeout=10_000) as recorded:
        qtbot.mouseClick(view.bad_button, Qt.MouseButton.LeftButton)
    review = recorded.args[0]
    assert review.part_id == part.part_id and review.outcome.value == "overridden" and review.user == "anna"
    rows = _rows(
        known, "SELECT part_id, verdict, outcome, comment FROM reviews WHERE part_id = :p", p=part.part_id
    )
    assert rows == [(part.part_id, "bad", "overridden", "scratch under the rim")]
    assert _rows(known, decision_sql, p=part.part_id) == before
    # The page reloads the part with its new review.
    qtbot.waitUntil(lambda: view.review_list.count() == 1 and "overridden" in view.review_list.item(0).text())
    assert view.comment.text() == ""

    # Confirming (from the keyboard): the model's own verdict.
    assert "recorded as anna (supervisor)" in view.signer_label.text()
    qtbot.waitUntil(view.confirm_button.isEnabled)
    with qtbot.waitSignal(view.reviewed, timeout=10_000) as recorded:
        qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.AltModifier)
    assert recorded.args[0].verdict is Verdict.GOOD and recorded.args[0].outcome.value == "confirmed"
    assert _rows(known, decision_sql, p=part.part_id) == before


def test_other_cam_methods_are_computed_off_the_gui_thread(
    qtbot, known: KnownLog, reader: ReaderThread, tiny_model: Path
) -> None:
    view = DetailView(reader, actor=lambda: None, bundle=tiny_model)
    qtbot.addWidget(view)
    view.show()
    part = next(d for d in known.decisions if d.image_path is not None)
    _open(qtbot, view, part.part_id)
    assert view.cam_worker is not None
    view.cam_choice.setCurrentIndex(view.cam_choice.findData("gradcam"))
    qtbot.waitUntil(lambda: view.cam_heatmap is not None, timeout=60_000)
    method, heatmap = view.cam_heatmap  # type: ignore[misc]
    assert method == "gradcam" and heatmap.dtype == np.uint8 and heatmap.ndim == 2
    assert view.cam_worker.thread_ids and threading.get_ident() not in view.cam_worker.thread_ids
    view.shutdown()
