"""Painting the live screen from the window's state (a mixin of ``StationWindow``).

Only the repaint timer (and tests, screenshots) call ``render_now``; the slots of the window
record what arrived and mark it dirty.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from core.common.types import InspectedPart, Verdict

from . import theme
from .live_state import format_age, format_score
from .widgets import local_time

if TYPE_CHECKING:
    from .main_window import StationWindow

BAD_DWELL_S = 1.0  # a bad verdict stays on the banner at least this long: no flicker at 10 parts/s
RATE_WINDOW_S = 60.0


class LiveRendering:
    """``render_now`` and its parts; ``self`` is the ``StationWindow``."""

    def _banner_held(self: StationWindow, now: float) -> bool:
        """A bad part on the banner is kept there for BAD_DWELL_S even if newer parts arrive."""
        part = self._banner_part
        return (
            self._live
            and part is not None
            and part is not self._latest
            and part.decision.verdict is Verdict.BAD
            and now - self._banner_since < BAD_DWELL_S
        )

    def render_now(self: StationWindow) -> None:
        """Draw the current state now (the timer calls this; tests and screenshots may too)."""
        self._dirty = False
        now = time.monotonic()
        if self._live:
            part = self._banner_part if self._banner_held(now) else self._latest
        else:
            part = self._selected
        if part is not self._banner_part:
            self._banner_part, self._banner_since = part, now
        # A bad part dwelling on the banner hides a newer one: draw again until the newest shows
        # (no new part may come to ask for it).
        self._dirty = self._live and part is not self._latest
        if part is not self.part_view.part:
            self.render_count += 1
        stale = None
        if self._live and part is not None and not self.delivering:
            stale = f"last part {format_age(self._idle_s())} ago"
        self.part_view.set_part(part)
        self.part_view.set_live(self._live)
        alarm = self._pill_alarm()
        self.part_view.set_alarm(alarm)
        self.part_view.set_caption(stale or "")
        self._render_verdict(part, stale)
        self._render_held()
        self._render_clock()
        self._render_counters()
        self._render_alarm()
        self.history_strip.set_parts(
            self.shown_history, None if self._live or part is None else part.decision.part_id
        )
        if not self._live:
            text, look = "▶  GO LIVE", "false"
        elif alarm is not None:
            text, look = f"⚠  {alarm}", "alarm"
        else:
            text, look = "●  LIVE", "true"
        # Re-polishing a styled widget is costly: only when its look changes, not at every repaint.
        if self.live_button.text() != text or self.live_button.property("live") != look:
            self.live_button.setText(text)
            self.live_button.setProperty("live", look)
            self.live_button.style().unpolish(self.live_button)
            self.live_button.style().polish(self.live_button)

    def _render_verdict(self: StationWindow, part: InspectedPart | None, stale: str | None) -> None:
        threshold_default = self._info.threshold if self._info else None
        if part is None:
            self.verdict_banner.set_verdict(None, "No part received yet")
            self.score_bar.set_values(None, threshold_default, theme.verdict_colour(None))
            self.score_label.setText("—")
            self.threshold_label.setText(f"threshold {format_score(threshold_default)}")
            for value in self._detail_values.values():
                value.setText("—")
            return
        decision = part.decision
        threshold = decision.threshold if decision.threshold is not None else threshold_default
        reason = decision.reason
        if decision.shows_anomaly_map and decision.anomaly_score is not None:
            # Only the good-only model fired: say so, the classifier's score alone would read "good".
            reason = (
                f"unlike good parts: anomaly {decision.anomaly_score:.2f} ≥ {decision.anomaly_threshold:.2f}"
                f" (classifier {format_score(decision.score)})"
            )
        if reason is None and decision.score is not None and decision.verdict is not Verdict.NOT_INSPECTED:
            relation = "≥" if decision.verdict is Verdict.BAD else "<"
            reason = f"score {format_score(decision.score)} {relation} threshold {format_score(threshold)}"
        self.verdict_banner.set_verdict(decision.verdict, reason, stale=stale)
        colour = theme.verdict_colour(decision.verdict)
        self.score_bar.set_values(decision.score, threshold, colour)
        self.score_label.setText(format_score(decision.score))
        style = f"color: {colour.name()};"
        if self.score_label.styleSheet() != style:  # a style sheet re-polishes: only on a change
            self.score_label.setStyleSheet(style)
        self.threshold_label.setText(f"threshold {format_score(threshold)}")
        self._detail_values["PART"].setText(decision.part_id)
        self._detail_values["SOURCE"].setText(decision.source_ref)
        self._detail_values["TIME"].setText(f"{local_time(decision.created_at):%Y-%m-%d  %H:%M:%S}")
        latency = "—" if decision.latency_ms is None else f"{decision.latency_ms:.1f} ms"
        self._detail_values["LATENCY"].setText(latency)

    def _render_held(self: StationWindow) -> None:
        held = self._held
        self.held_panel.setVisible(held is not None)
        self.held_view.set_part(held)
        if held is not None:
            decision = held.decision
            self.held_info.setText(
                f"{local_time(decision.created_at):%H:%M:%S}  ·  score {format_score(decision.score)}"
                f"  ·  {decision.part_id}"
            )

    def _render_clock(self: StationWindow) -> None:
        text = f"{datetime.now():%H:%M:%S}"
        if text != self._clock.text():
            self._clock.setText(text)

    def _render_counters(self: StationWindow) -> None:
        session = self.counters
        shift = self._shift
        if shift is not None:
            good, bad, not_inspected = shift.good, shift.bad, shift.not_inspected
            caption = f"SHIFT  {shift.shift.split('/')[-1].upper()}  ·  SINCE {shift.start:%H:%M}"
            self.session_label.setText(
                f"this session: {session.inspected} inspected  ·  {session.bad} bad  ·  "
                f"{session.not_inspected} not inspected"
            )
        else:
            good, bad, not_inspected = session.good, session.bad, session.not_inspected
            caption = "THIS SESSION"
            self.session_label.setText("")
        if self.counters_caption.text() != caption:
            self.counters_caption.setText(caption)
        tiles = self.counter_tiles
        inspected = good + bad
        tiles["inspected"].set_value(f"{inspected}")
        tiles["good"].set_value(f"{good}")
        tiles["bad"].set_value(f"{bad}")
        tiles["not_inspected"].set_value(f"{not_inspected}")
        if not inspected:
            tiles["yield"].set_value("—")
        else:  # "100%" rather than "100.0%": the tile is sized for five characters
            yield_pct = 100.0 * good / inspected
            tiles["yield"].set_value("100%" if yield_pct >= 100 else f"{yield_pct:.1f}%")
        tiles["rate"].set_value("—" if session.total < 2 else f"{session.parts_per_min:.0f}")

    def _render_alarm(self: StationWindow) -> None:
        entry = self._board.newest
        if entry is not None:
            text = entry.text()
            if self.alarm_label.text() != text:
                self.alarm_label.setText(text)
                self.alarm_label.setToolTip(f"details: {entry.detail}")
            more = len(self._board.entries) - 1
            self.alarm_more.setText(f"+{more} more" if more else "")
            self.alarm_bar.setProperty("over", "true" if entry.cleared_at is not None else "false")
            self.alarm_bar.show()
        elif self.alarm_bar.isVisible() or self.alarm_label.text():
            self.alarm_label.clear()
            self.alarm_bar.hide()
        level, words = self.station_state
        if self.state_label.text() != words or self.state_label.property("level") != level:
            self.state_label.setText(words)
            self.state_label.setProperty("level", level)
            self.state_label.style().unpolish(self.state_label)
            self.state_label.style().polish(self.state_label)
        status = self.worker_status
        if self._status_worker.text() != status:
            self._status_worker.setText(status)

    def _idle_s(self: StationWindow) -> float | None:
        return None if self._latest_at is None else time.monotonic() - self._latest_at

    def _parts_per_min(self: StationWindow, now: float) -> float:
        arrivals = self._arrivals
        while arrivals and now - arrivals[0] > RATE_WINDOW_S:
            arrivals.popleft()
        if len(arrivals) < 2:
            return 0.0
        # Measured from the first part in the window to *now*, so the rate falls when the line stops.
        span_s = max(now - arrivals[0], 1e-3)
        return (len(arrivals) - 1) / span_s * 60.0
