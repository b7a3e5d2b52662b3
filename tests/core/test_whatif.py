"""The what-if of a threshold change on a real SQLite log whose truth is known, checked against SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from known_truth import STATION, VALIDATION, make_known_log
from scipy.stats import beta
from sqlalchemy import create_engine, text

from core.reports.shifts import ShiftPlan
from core.reports.whatif import clopper_pearson, describe, roc_points, what_if, window
from core.storage import VisualLog

# Each part's truth is its newest review; unreviewed parts have none.
_SQL = """
SELECT COALESCE((SELECT r.verdict FROM reviews r WHERE r.part_id = d.part_id ORDER BY r.seq DESC LIMIT 1),
                'unreviewed') AS truth,
       SUM(CASE WHEN d.score < :cur AND d.score >= :new THEN 1 ELSE 0 END) AS good_to_bad,
       SUM(CASE WHEN d.score >= :cur AND d.score < :new THEN 1 ELSE 0 END) AS bad_to_good,
       SUM(CASE WHEN d.score < :new THEN 1 ELSE 0 END) AS good_at_new,
       COUNT(*) AS inspected
FROM decisions d WHERE d.score IS NOT NULL GROUP BY truth
"""


def _sql_figures(url: str, current: float, proposed: float) -> dict[str, dict[str, int]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(_SQL), {"cur": current, "new": proposed}).mappings().all()
    finally:
        engine.dispose()
    return {row["truth"]: {k: int(v) for k, v in row.items() if k != "truth"} for row in rows}


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_known_log(tmp_path_factory.mktemp("known"))


@pytest.mark.parametrize("proposed", [0.35, 0.5, 0.62, 0.8])
def test_flips_yield_and_rates_are_what_sql_and_the_truth_say(known, proposed: float) -> None:  # type: ignore[no-untyped-def]
    with VisualLog(known.url, media_root=known.media_root, station=STATION) as log:
        now = datetime.now(UTC)
        result = what_if(log, proposed, since=now - timedelta(days=1), until=now)

    sql = _sql_figures(known.url, 0.5, proposed)
    assert result.current == 0.5  # the log's, as recorded
    for truth in ("good", "bad", "unreviewed"):
        assert result.good_to_bad[truth] == sql[truth]["good_to_bad"]
        assert result.bad_to_good[truth] == sql[truth]["bad_to_good"]
    assert result.inspected == sum(v["inspected"] for v in sql.values()) == len(known.truth)
    assert result.not_inspected == 120 - len(known.truth) == 5
    assert result.yield_proposed == pytest.approx(
        sum(v["good_at_new"] for v in sql.values()) / result.inspected
    )
    assert len(result.flipped) == result.flips
    assert all((f.score >= 0.5) != (f.score >= proposed) for f in result.flipped)

    # Miss and false-reject rates on reviewed parts, from the known truth.
    reviewed_bad = [known.scores[p] for p in known.reviewed if known.truth[p].value == "bad"]
    reviewed_good = [known.scores[p] for p in known.reviewed if known.truth[p].value == "good"]
    point = result.reviewed_proposed
    assert (point.miss.count, point.miss.total) == (
        sum(s < proposed for s in reviewed_bad),
        len(reviewed_bad),
    )
    assert (point.false_reject.count, point.false_reject.total) == (
        sum(s >= proposed for s in reviewed_good),
        len(reviewed_good),
    )
    assert point.miss.low <= (point.miss.rate or 0.0) <= point.miss.high

    # The bundle's validation figures at both thresholds, and the defects the new one misses.
    assert result.validation_proposed is not None
    assert result.validation_proposed.miss.count == sum(s < proposed for s in VALIDATION["bad"])
    assert result.validation_missed == tuple(s for s in VALIDATION["bad"] if s < proposed)
    assert result.misses_validation_defects == (proposed > 0.62)
    assert ("WARNING" in "\n".join(describe(result))) == (proposed > 0.62)


def test_clopper_pearson_matches_the_beta_quantiles() -> None:
    for count, total in ((0, 10), (3, 10), (10, 10), (1, 250), (37, 80)):
        low, high = clopper_pearson(count, total)
        want_low = 0.0 if count == 0 else beta.ppf(0.025, count, total - count + 1)
        want_high = 1.0 if count == total else beta.ppf(0.975, count + 1, total - count)
        assert (low, high) == pytest.approx((want_low, want_high), abs=1e-9)
    assert clopper_pearson(0, 10)[1] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert clopper_pearson(0, 0) == (0.0, 1.0)


def test_roc_points_run_from_the_corner_to_the_corner() -> None:
    fpr, tpr = roc_points(np.array([0.1, 0.4, 0.6]), np.array([0.5, 0.7, 0.9]))
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    # At 0.6: one good of three above, two bad of three.
    assert any(f == pytest.approx(1 / 3) and t == pytest.approx(2 / 3) for f, t in zip(fpr, tpr, strict=True))


def test_windows_and_bad_input(known, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    assert window("24h", now) == (now - timedelta(hours=24), now)
    assert window("7d", now)[0] == now - timedelta(days=7)
    since, until = window("shift", now, ShiftPlan.parse("06:00=early,14:00=late", "UTC"))
    assert since == datetime(2025, 3, 14, 6, 0, tzinfo=UTC) and until <= datetime(
        2025, 3, 14, 14, 0, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="unknown window"):
        window("fortnight", now)
    with VisualLog(known.url, media_root=known.media_root, station=STATION) as log:
        with pytest.raises(ValueError, match="between 0 and 1"):
            what_if(log, 1.5, since=now, until=now)
        empty = what_if(log, 0.7, since=now - timedelta(days=400), until=now - timedelta(days=399))
    assert (empty.inspected, empty.flips, empty.yield_current) == (0, 0, None)
    assert empty.reviewed_current.miss.rate is None and empty.to_json()["flips"] == 0
