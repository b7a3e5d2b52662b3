"""The history page on a real SQLite log: filters, pages, keys and thumbnails as the SQL says."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from history_log import T0, KnownLog, make_known_log
from PySide6.QtCore import Qt
from sqlalchemy import create_engine, text

from inspector_gui.history_model import ReaderThread
from inspector_gui.history_view import HistoryView


@pytest.fixture
def known(tmp_path: Path) -> KnownLog:
    return make_known_log(tmp_path)


@pytest.fixture
def reader(known: KnownLog) -> Iterator[ReaderThread]:
    thread = ReaderThread(known.open)
    yield thread
    thread.shutdown()


def _sql(known: KnownLog, where: str, order: str) -> list[str]:
    engine = create_engine(known.url)
    try:
        with engine.connect() as connection:
            return [
                row[0]
                for row in connection.execute(
                    text(
                        "SELECT d.part_id FROM decisions d JOIN stations s ON s.id = d.station_id"
                        f" WHERE {where} ORDER BY {order}"
                    )
                )
            ]
    finally:
        engine.dispose()


def _shown(view: HistoryView) -> list[str]:
    return [view.model.row_at(r).decision.part_id for r in range(view.model.rowCount())]  # type: ignore[union-attr]


def _choose(combo: object, text_: str) -> None:
    index = combo.findText(text_)  # type: ignore[attr-defined]
    assert index >= 0, text_
    combo.setCurrentIndex(index)  # type: ignore[attr-defined]


def test_filters_and_pages_equal_the_sql_query(qtbot, known: KnownLog, reader: ReaderThread) -> None:
    view = HistoryView(reader, page_size=4, clock=lambda: T0)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.model.page_changed, timeout=10_000):
        view.show()
    # Stations and models arrive from the log for the filter bar.
    qtbot.waitUntil(lambda: view.station_choice.count() == 3, timeout=5000)
    assert view.model_choice.findText("tiny") > 0

    everything = _sql(known, "1=1", "d.created_at DESC, d.part_id DESC")
    assert _shown(view) == everything[:4]
    qtbot.waitUntil(lambda: view.model.total == len(everything), timeout=5000)
    assert "rows 1–4 of 36 matching" in view.status.text()
    # Thumbnails follow the rows: real pictures, none for the parts without one.
    qtbot.waitUntil(lambda: view.model.thumbnails_pending == 0, timeout=5000)
    for r in range(4):
        row = view.model.row_at(r)
        has_picture = row is not None and row.decision.image_path is not None
        assert (
            view.model.data(view.model.index(r, 0), Qt.ItemDataRole.DecorationRole) is not None
        ) == has_picture

    # Good parts of line-b, oldest first: the same rows as the SQL, page after page.
    with qtbot.waitSignal(view.model.page_changed, timeout=10_000):
        _choose(view.station_choice, "line-b")
        _choose(view.verdict_choice, "Good")
        _choose(view.sort_choice, "Oldest first")
        view.apply_filters()
    expected = _sql(known, "s.name = 'line-b' AND d.verdict = 'good'", "d.created_at, d.part_id")
    assert len(expected) > 8
    seen = _shown(view)
    while view.next_button.isEnabled():
        with qtbot.waitSignal(view.model.page_changed, timeout=10_000):
            qtbot.mouseClick(view.next_button, Qt.MouseButton.LeftButton)
        seen += _shown(view)
    assert seen == expected
    assert view.model.row_at(0).decision.verdict.value == "good"  # type: ignore[union-attr]

    # Keyboard: Ctrl+Home to the first page, PgDn past the last row to the next page, Enter opens.
    view.table.setFocus()
    with qtbot.waitSignal(view.model.page_changed, timeout=10_000):
        qtbot.keyClick(view.table, Qt.Key.Key_Home, Qt.KeyboardModifier.ControlModifier)
    assert _shown(view) == expected[:4]
    view.table.selectRow(3)
    with qtbot.waitSignal(view.model.page_changed, timeout=10_000):
        qtbot.keyClick(view.table, Qt.Key.Key_PageDown)
    assert _shown(view) == expected[4:8]
    view.table.selectRow(0)
    with qtbot.waitSignal(view.part_opened, timeout=2000) as opened:
        qtbot.keyClick(view.table, Qt.Key.Key_Return)
    assert opened.args == [expected[4]]
    with qtbot.waitSignal(view.model.page_changed, timeout=10_000):
        qtbot.keyClick(view.table, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    # The last page is the last 4 rows (keyset pages are not aligned to the first page's).
    assert _shown(view) == expected[-4:]
    assert not view.next_button.isEnabled() and view.previous_button.isEnabled()
    assert "(last page)" in view.status.text()

    # Not inspected, unreviewed, with a score band off: the parts the model never judged.
    with qtbot.waitSignal(view.model.page_changed, timeout=10_000):
        _choose(view.station_choice, "All stations")
        _choose(view.verdict_choice, "Not inspected")
        _choose(view.review_choice, "Not reviewed")
        _choose(view.sort_choice, "Newest first")
        view.apply_filters()
    expected = _sql(
        known,
        "d.verdict = 'not_inspected' AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.part_id = d.part_id)",
        "d.created_at DESC, d.part_id DESC",
    )
    assert expected and _shown(view) == expected[:4]

    # A score band by score: inspected parts in [0.2, 0.6), highest first.
    with qtbot.waitSignal(view.model.page_changed, timeout=10_000):
        _choose(view.verdict_choice, "All verdicts")
        _choose(view.review_choice, "Any review state")
        _choose(view.sort_choice, "Highest score")
        view.score_min.setValue(0.2)
        view.score_max.setValue(0.6)
        view.apply_filters()
    expected = _sql(known, "d.score >= 0.2 AND d.score < 0.6", "d.score DESC, d.part_id DESC")
    assert _shown(view) == expected[:4]
    qtbot.waitUntil(lambda: view.model.total == len(expected), timeout=5000)

    # Every read ran on the reader's thread.
    assert reader.reader.thread_ids and threading.get_ident() not in reader.reader.thread_ids


def test_a_range_that_ends_before_it_starts_is_said(qtbot, reader: ReaderThread) -> None:
    view = HistoryView(reader, clock=lambda: T0)
    qtbot.addWidget(view)
    _choose(view.time_choice, "Range")
    view.until_edit.setDateTime(view.since_edit.dateTime().addSecs(-3600))
    view.apply_filters()
    assert "ends before it starts" in view.status.text()


def test_this_shift_uses_the_plan(qtbot, known: KnownLog, reader: ReaderThread) -> None:
    """T0 is 06:00 UTC; with the default plan in UTC the early shift starts then: every part is in it."""
    view = HistoryView(reader, clock=lambda: T0.replace(hour=9), page_size=50)
    qtbot.addWidget(view)
    from core.reports.shifts import ShiftPlan

    view._plan = ShiftPlan.parse("06:00=early,14:00=late,22:00=night", "UTC")
    view._started = True  # no info request: keep the plan set above
    with qtbot.waitSignal(view.model.page_changed, timeout=10_000):
        _choose(view.time_choice, "This shift")
        view.apply_filters()
    assert len(_shown(view)) == len(known.decisions)
    with qtbot.waitSignal(view.model.page_changed, timeout=10_000):
        _choose(view.time_choice, "Previous shift")
        view.apply_filters()
    assert _shown(view) == []


def test_quick_changes_show_the_newest_query_and_its_count(
    qtbot, known: KnownLog, reader: ReaderThread
) -> None:
    """Filters changed and pages turned before the answers arrive: the page and the count shown
    are those of the newest query, and paging does not lose the count."""
    from core.common.types import Verdict
    from core.storage.history import HistoryQuery
    from inspector_gui.history_model import HistoryModel

    model = HistoryModel(reader, page_size=3)
    good = HistoryQuery(verdicts=(Verdict.GOOD,))
    bad = HistoryQuery(verdicts=(Verdict.BAD,))
    model.set_query(good)
    model.set_query(bad)
    model.next_page()  # on a page not shown yet: ignored, the first page of ``bad`` comes
    qtbot.waitUntil(lambda: not model.loading and model.total is not None, timeout=10_000)
    expected = _sql(known, "d.verdict = 'bad'", "d.created_at DESC, d.part_id DESC")
    assert model.total == len(expected)
    assert [model.row_at(r).decision.part_id for r in range(model.rowCount())] == expected[:3]  # type: ignore[union-attr]
    model.set_query(good)
    model.next_page()
    qtbot.waitUntil(lambda: not model.loading and model.total is not None, timeout=10_000)
    expected = _sql(known, "d.verdict = 'good'", "d.created_at DESC, d.part_id DESC")
    qtbot.waitUntil(lambda: model.total == len(expected), timeout=10_000)
