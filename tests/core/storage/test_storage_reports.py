"""Shift plans and shift reports: boundaries in local time, deterministic and spreadsheet-safe CSV."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from storage_helpers import ADMIN_PASSWORD, MODEL_HASH, login, make_inspection, make_part, tamper

from core.cli import main
from core.common.fileio import sha256_bytes
from core.common.types import Verdict
from core.reports import ShiftPlan, safe_cell, write_shift_report
from core.storage import VisualLog

BERLIN = ZoneInfo("Europe/Berlin")
PLAN = "06:00=early,14:00=late,22:00=night"
OTHER_MODEL = sha256_bytes(b"another model")


def _local(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=BERLIN)


# ---------------------------------------------------------------------------- shift plans


def test_shifts_run_from_one_start_to_the_next_and_the_night_crosses_midnight() -> None:
    plan = ShiftPlan.parse(PLAN, "Europe/Berlin")
    early, late, night = plan.shifts_of(date(2025, 3, 14))
    assert (early.name, early.local_start, early.local_end) == (
        "early",
        _local("2025-03-14", "06:00"),
        _local("2025-03-14", "14:00"),
    )
    assert late.end == night.start
    assert night.local_end == _local("2025-03-15", "06:00") and night.day == date(2025, 3, 14)
    assert plan.shift_at(_local("2025-03-15", "05:59")) == night
    assert plan.shift_at(_local("2025-03-14", "06:00")) == early
    assert plan.previous(early).label == "2025-03-13/night"
    assert str(plan) == "06:00=early,14:00=late,22:00=night (Europe/Berlin)"


def test_shifts_follow_daylight_saving_time() -> None:
    plan = ShiftPlan.parse("22:00=night,06:00=day", "Europe/Berlin")
    spring = plan.shift_on(date(2025, 3, 29), "night")
    autumn = plan.shift_on(date(2025, 10, 25), "night")
    assert spring.end - spring.start == timedelta(hours=7)
    assert autumn.end - autumn.start == timedelta(hours=9)
    assert plan.shift_on(date(2025, 3, 30), "day").start == datetime(2025, 3, 30, 4, 0, tzinfo=UTC)


def test_a_user_names_a_shift_in_several_ways() -> None:
    plan = ShiftPlan.parse(PLAN, "Europe/Berlin")
    now = _local("2025-03-15", "01:30")  # the night shift of the 14th
    assert plan.resolve("current", now).label == "2025-03-14/night"
    assert plan.resolve("previous", now).label == "2025-03-14/late"
    assert plan.resolve("last", now).label == "2025-03-14/late"
    assert plan.resolve("2025-03-12/late", now).label == "2025-03-12/late"
    assert plan.resolve("2025-03-13T05:00", now).label == "2025-03-12/night"
    assert plan.resolve("early", now).label == "2025-03-14/early"
    assert plan.resolve("night", now).label == "2025-03-14/night"
    for bad in ("yesterday", "2025-13-01/early", "2025-03-14/lunch"):
        with pytest.raises(ValueError):
            plan.resolve(bad, now)
    for bad_plan in ("6=early", "06:00=early,06:00=late", "06:00=early,14:00=early", "06:00=a b"):
        with pytest.raises(ValueError):
            ShiftPlan.parse(bad_plan, "Europe/Berlin")
    with pytest.raises(ValueError, match="time zone"):
        ShiftPlan.parse(PLAN, "Mars/Olympus")


def test_cells_that_a_spreadsheet_would_run_are_neutralised() -> None:
    for dangerous in ("=1+1", "+49 30 1234", "-2", "@SUM(A1)", "\t=x", "\r=x"):
        assert safe_cell(dangerous) == "'" + dangerous
    for harmless in ("part 7", "0.500000", "", "Prüfteil =7", "'quoted"):
        assert safe_cell(harmless) == harmless
    assert safe_cell(None) == ""


# ---------------------------------------------------------------------------- reports


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _shift_of_parts(log: VisualLog, clock: Clock) -> dict[str, str]:
    """Records parts in the early shift of 2025-03-14 (Berlin) and one outside it; name -> part id."""
    anna = login(log, "anna")
    ids: dict[str, str] = {}

    def at(
        clock_text: str,
        name: str,
        score: float | None,
        *,
        threshold: float = 0.5,
        model: str = MODEL_HASH,
        source: str | None = None,
    ) -> None:
        clock.now = _local("2025-03-14", clock_text)
        part = make_part(source_ref=source or f"/inbox/{name}.png", image=score is not None)
        if score is None:
            decision = log.record(part, None, model_hash=None, reason="truncated JPEG")
        else:
            decision = log.record(
                part,
                make_inspection(score=score, threshold=threshold),
                model_hash=model,
                model_name="tiny" if model == MODEL_HASH else None,
            )
        ids[name] = decision.part_id

    clock.now = _local("2025-03-14", "05:00")
    log.record_threshold_change(
        None,
        0.5,
        actor=log.access.system_actor(),
        reason="start-up",
        model_hash=MODEL_HASH,
        model_name="tiny",
    )
    at("05:59", "before", 0.1)
    at("06:00", "first", 0.1)
    at("06:30", "formula", 0.9, source='=HYPERLINK("http://evil","x")')
    at("07:00", "missed", 0.2)
    at("07:30", "rejected", 0.8)
    at("08:00", "unreadable", None, source="-rm -rf.png")
    at("09:00", "Prüfteil", 0.6)
    clock.now = _local("2025-03-14", "10:00")
    log.record_threshold_change(0.5, 0.65, actor=anna, reason="too many false rejects, +5%")
    at("10:30", "second-model", 0.6, threshold=0.65, model=OTHER_MODEL)
    at("13:59", "last", 0.3, threshold=0.65)
    clock.now = _local("2025-03-14", "15:00")
    log.review(ids["missed"], verdict=Verdict.BAD, actor=anna, comment="crack at the edge")
    log.review(ids["rejected"], verdict=Verdict.GOOD, actor=anna)
    log.review(ids["Prüfteil"], verdict=Verdict.BAD, actor=anna)
    log.review(ids["unreadable"], verdict=Verdict.GOOD, actor=anna)
    at("14:00", "after", 0.1)
    return ids


def _read(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def test_a_shift_report_lists_every_part_and_sums_up_the_shift(
    db_url: str, open_log: Callable[..., VisualLog], tmp_path: Path
) -> None:
    clock = Clock(_local("2025-03-14", "05:00"))
    log = open_log(db_url, station="line 1/a", clock=clock)
    ids = _shift_of_parts(log, clock)
    shift = ShiftPlan.parse(PLAN, "Europe/Berlin").shift_on(date(2025, 3, 14), "early")

    report = write_shift_report(log, shift, tmp_path / "out")

    assert report.parts_csv.name == "line_1_a_2025-03-14_early_parts.csv"
    rows = _read(report.parts_csv)
    assert rows[0] == [
        "part_id", "time", "source", "score", "threshold", "verdict", "status",
        "review", "reviewed_by", "model", "image", "heatmap", "anomaly_score", "anomaly_threshold", "fired",
    ]  # fmt: skip
    body = {row[0]: row for row in rows[1:]}
    names = ["first", "formula", "missed", "rejected", "unreadable", "Prüfteil", "second-model", "last"]
    assert [row[0] for row in rows[1:]] == [ids[n] for n in names]  # in time order, the shift only
    first = body[ids["first"]]
    assert first[1:7] == [
        "2025-03-14T06:00:00.000+01:00",
        "/inbox/first.png",
        "0.100000",
        "0.500000",
        "good",
        "inspected",
    ]
    assert first[9] == "tiny (" + MODEL_HASH[:12] + ")" and first[10].endswith(f"{ids['first']}.png")
    assert body[ids["formula"]][2] == '\'=HYPERLINK("http://evil","x")'
    assert body[ids["unreadable"]][2:8] == [
        "'-rm -rf.png",
        "",
        "",
        "not_inspected",
        "not inspected: truncated JPEG",
        "overridden: good",
    ]
    assert body[ids["missed"]][7:9] == ["overridden: bad", "anna"]
    assert body[ids["second-model"]][9] == OTHER_MODEL[:12]

    summary = dict(_read(report.summary_csv)[1:])
    assert summary == report.summary
    expected = {
        "station": "line 1/a", "shift": "early", "shift_day": "2025-03-14",
        "start": "2025-03-14T06:00:00.000+01:00", "end": "2025-03-14T14:00:00.000+01:00",
        "parts": "8", "good": "4", "bad": "3", "not_inspected": "1", "yield": "0.5000",
        "reviewed": "4", "confirmed": "1", "overridden": "3", "misses": "1", "false_rejects": "1",
        "not_inspected_reviewed": "1", "good_after_review": "5", "yield_after_review": "0.6250",
        "threshold_at_start": "0.500000",
        "thresholds_in_force": "0.500000 (5 parts); 0.650000 (2 parts)",
        "threshold_changes": "1",
        "models_in_force": f"{OTHER_MODEL[:12]}: 1 parts; tiny ({MODEL_HASH[:12]}): 6 parts",
        "mean_latency_ms": "12.50",
    }  # fmt: skip
    assert {k: summary[k] for k in expected} == expected
    assert summary["threshold_change_1"] == (
        "2025-03-14T10:00:00.000+01:00 anna: 0.500000 -> 0.650000 (too many false rejects, +5%)"
    )
    # The head is the shift's last record ("last", seq 11), proven intact up to there.
    assert (summary["chain_head_seq"], report.head.seq) == ("11", 11)
    assert summary["chain_verified"].startswith("ok: records 1 to 11 intact")


def test_a_shift_report_is_deterministic_and_later_records_do_not_change_it(
    db_url: str, open_log: Callable[..., VisualLog], tmp_path: Path
) -> None:
    clock = Clock(_local("2025-03-14", "05:00"))
    log = open_log(db_url, clock=clock)
    ids = _shift_of_parts(log, clock)
    shift = ShiftPlan.parse(PLAN, "Europe/Berlin").shift_on(date(2025, 3, 14), "early")
    first = write_shift_report(log, shift, tmp_path / "a")

    clock.now = _local("2025-03-14", "16:00")
    log.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    log.record_threshold_change(0.65, 0.6, actor=login(log, "anna"), reason="back")
    again = write_shift_report(log, shift, tmp_path / "b")

    for name in ("parts_csv", "summary_csv"):
        assert getattr(first, name).read_bytes() == getattr(again, name).read_bytes()

    tamper(log, "decisions", "UPDATE decisions SET score = 0.01 WHERE part_id = :p", p=ids["formula"])
    broken = write_shift_report(log, shift, tmp_path / "c")
    assert broken.verification is not None and not broken.verification.ok
    assert broken.summary["chain_verified"].startswith("BROKEN at record 4: the decision about part")


def test_report_and_shifts_commands(
    sqlite_url: str,
    open_log: Callable[..., VisualLog],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(_local("2025-03-14", "05:00"))
    log = open_log(sqlite_url, station="line-1", clock=clock)
    _shift_of_parts(log, clock)
    log.close()
    out = tmp_path / "reports"

    shifts = ["shifts", "--db", sqlite_url, "--set", "06:00=F,18:00=N", "--tz", "Europe/Berlin"]
    monkeypatch.setenv("INSPECTOR_PASSWORD", "anna-password")
    assert main([*shifts, "--user", "anna"]) == 2  # a supervisor may not change the plan
    assert "anna may not change the shift plan" in capsys.readouterr().err
    monkeypatch.setenv("INSPECTOR_PASSWORD", ADMIN_PASSWORD)
    assert main([*shifts, "--user", "admin"]) == 0
    assert "06:00=F,18:00=N (Europe/Berlin)" in capsys.readouterr().out
    assert main(["report", "--db", sqlite_url, "--shift", "2025-03-14/F", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "line-1 2025-03-14/F (2025-03-14T06:00:00.000+01:00 to 2025-03-14T18:00:00.000+01:00): 9 parts"
        in printed
    )
    assert "chain head: 16:" in printed and "(ok: records 1 to 16 intact" in printed
    assert (out / "line-1_2025-03-14_F_parts.csv").is_file() and (
        out / "line-1_2025-03-14_F_summary.csv"
    ).is_file()

    assert (
        main(
            [
                "report",
                "--db",
                sqlite_url,
                "--shift",
                "2025-03-14T07:00",
                "--shifts",
                PLAN,
                "--tz",
                "Europe/Berlin",
                "--out",
                str(out),
                "--no-verify",
            ]
        )
        == 0
    )
    assert "chain head: 11:" in capsys.readouterr().out

    second = open_log(sqlite_url, station="line-2")
    second.record(make_part(), make_inspection(), model_hash=MODEL_HASH)
    assert main(["report", "--db", sqlite_url, "--shift", "current", "--out", str(out)]) == 2
    assert "--station (line-1, line-2)" in capsys.readouterr().err
