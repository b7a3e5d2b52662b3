"""The trend page: figures from a real SQLite visual log, computed off the GUI thread, plotted."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from core.common.types import Inspection, Part
from core.reports.shifts import DEFAULT_PLAN, ShiftPlan
from core.reports.trends import shift_trends
from core.storage import VisualLog
from inspector_gui.trends import TrendsPage

NOW = datetime(2026, 3, 2, 9, 45, tzinfo=UTC)
PLAN = ShiftPlan.parse(DEFAULT_PLAN, "UTC")  # 06:00-14:00 UTC covers the parts, wherever the test runs


def _log_with_parts(tmp_path: Path) -> tuple[str, Path]:
    """A log with 40 parts over the last 35 minutes: every fourth one bad, latency 10..49 ms."""
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    media = tmp_path / "media"
    times = [NOW - timedelta(minutes=35) + timedelta(seconds=50 * i) for i in range(40)]
    clock = iter(times)
    heatmap = np.zeros((8, 8), dtype=np.uint8)
    image = np.full((8, 8), 100, dtype=np.uint8)
    with VisualLog(url, media_root=media, station="line-7", clock=lambda: next(clock)) as log:
        for i in range(40):
            score = 0.9 if i % 4 == 0 else 0.1 + 0.01 * i
            inspection = Inspection(score=score, threshold=0.6, heatmap=heatmap, latency_ms=10.0 + i)
            log.record(
                Part(source_ref=f"p{i}", arrived_at=times[i], image=image), inspection, model_hash="b" * 64
            )
    return url, media


@pytest.fixture
def trends_page(qtbot, tmp_path: Path):
    url, media = _log_with_parts(tmp_path)
    pages: list[TrendsPage] = []

    def _open(**options) -> TrendsPage:
        page = TrendsPage(
            lambda: VisualLog(url, media_root=media, station="line-7"),
            clock=lambda: NOW,
            plan=PLAN,
            **options,
        )
        qtbot.addWidget(page)
        pages.append(page)
        return page

    yield _open, url, media
    for page in pages:
        page.shutdown()


def test_the_page_plots_the_shift_as_computed_from_the_log_off_the_gui_thread(qtbot, trends_page) -> None:
    open_page, url, media = trends_page
    page = open_page(bucket_s=300)
    with qtbot.waitSignal(page.refreshed, timeout=10_000) as shown:
        page.show()  # showing the page asks for figures
    trends = shown.args[0]
    with VisualLog(url, media_root=media, station="line-7") as log:
        expected = shift_trends(log, now=NOW, plan=PLAN, bucket_s=300)
    assert trends == expected
    assert trends.trend.total == 40 and trends.trend.scores.bad[18] == 10  # 0.9: bin 18 of 0..19
    # The query ran on the reader's thread, never on the GUI thread.
    assert page.reader.thread_ids and threading.get_ident() not in page.reader.thread_ids
    assert page.reader_thread.isRunning()
    # What is plotted: the threshold line where the log says, bars for the bad rate.
    assert page.threshold_line.isVisible() and page.threshold_line.value() == pytest.approx(0.6)
    heights = page._bad_rate_bars.opts["height"]
    rated = [100 * b.bad_rate for b in trends.trend.buckets if b.bad_rate is not None]
    assert list(heights) == pytest.approx(rated)
    assert "40 parts" in page.summary.text() and "bad rate 25.0 %" in page.summary.text()
    page.shutdown()
    assert not page.reader_thread.isRunning()


def test_the_page_refreshes_on_its_timer_and_skips_while_busy(qtbot, trends_page) -> None:
    open_page, _url, _media = trends_page
    page = open_page(refresh_s=0.2)
    with qtbot.waitSignal(page.refreshed, timeout=10_000):
        page.show()
    with qtbot.waitSignal(page.refreshed, timeout=5_000):  # the timer's, without any request
        pass
    assert len(page.reader.thread_ids) >= 2
    page._busy = True  # a request in flight: the next is skipped, not queued
    assert page.refresh() is False


def test_an_unreadable_log_is_said_in_words_and_retried(qtbot, tmp_path: Path) -> None:
    attempts: list[int] = []

    def _open_log() -> VisualLog:
        attempts.append(1)
        return VisualLog(f"sqlite:///{tmp_path / 'not-a-folder' / 'x' / 'log.sqlite'}", media_root=tmp_path)

    (tmp_path / "not-a-folder").write_text("a file where a folder should be")
    page = TrendsPage(_open_log, clock=lambda: NOW)
    qtbot.addWidget(page)
    page.show()
    # (Not waitSignal on the reader: its signals are emitted on the reader's thread.)
    qtbot.waitUntil(lambda: page.error is not None, timeout=10_000)
    assert "cannot be read" in page.summary.text()
    assert page.refresh() is True  # not stuck busy: the next refresh tries again
    qtbot.waitUntil(lambda: len(attempts) == 2)
    page.shutdown()
