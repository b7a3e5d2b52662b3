"""The station runtime on a real hot folder: every file exactly one row, files moved after commit."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from core.common.types import Verdict
from core.model.bundle import read_card
from core.station.config import SourceOptions, StationConfig
from core.station.events import PartInspected, StationEvent, StationStopped
from core.station.loop import LoopSettings, StationLoop
from core.station.runtime import StationRuntime, build_runtime
from core.storage import VisualLog
from core.synth.parts import part_image

FAST_SOURCE = SourceOptions(settle_s=0.1, scan_interval_s=0.1, truncated_grace_s=0.2)


def _config(inbox: Path, model: Path, tmp_path: Path, **fields: object) -> StationConfig:
    return StationConfig(
        source=f"hotfolder:{inbox}",
        model=model,
        db_url=f"sqlite:///{tmp_path / 'log.sqlite'}",
        media_root=tmp_path / "media",
        station_name="t",
        **fields,  # type: ignore[arg-type]
    )


def _write_parts(inbox: Path) -> dict[str, str]:
    """Six good/bad parts and three broken files; name -> expected status."""
    inbox.mkdir(parents=True)
    expected = {}
    for i in range(6):
        image, _ = part_image(11, i, defective=bool(i % 2), size=256)
        cv2.imwrite(str(inbox / f"part_{i}.png"), image)
        expected[f"part_{i}.png"] = "inspected"
    ok, jpeg = cv2.imencode(".jpg", part_image(11, 9, defective=False, size=256)[0])
    (inbox / "truncated.jpg").write_bytes(jpeg.tobytes()[:2000])
    (inbox / "empty.png").write_bytes(b"")
    (inbox / "report.png").write_bytes(b"%PDF-1.4 not an image")
    expected.update(
        {"truncated.jpg": "truncated JPEG", "empty.png": "empty file", "report.png": "not an image"}
    )
    (inbox / ".still-writing.png.tmp").write_bytes(b"partial")
    return expected


def test_hot_folder_every_file_one_row(tiny_model: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    expected = _write_parts(inbox)
    db = f"sqlite:///{tmp_path / 'log.sqlite'}"
    config = _config(inbox, tiny_model, tmp_path, max_parts=len(expected))
    events: list[StationEvent] = []
    loop = StationLoop(lambda: build_runtime(config), settings=LoopSettings.from_config(config))
    loop.subscribe(events.append)
    done = loop.run()  # returns by itself after max_parts
    assert done == len(expected)
    assert events[-1] == StationStopped(parts_done=len(expected), finished=True)
    seen = [e.item for e in events if isinstance(e, PartInspected)]
    card_threshold = read_card(tiny_model).threshold

    with VisualLog(db, media_root=tmp_path / "media", station="t") as log:
        decisions = log.latest(100)
        assert len(decisions) == len(expected)
        by_name = {Path(d.source_ref).name: d for d in decisions}
        assert set(by_name) == set(expected)
        for name, want in expected.items():
            d = by_name[name]
            if want == "inspected":
                assert d.verdict in (Verdict.GOOD, Verdict.BAD)
                # the threshold in force (the card's: none was configured) and the verdict it gave
                assert d.threshold == card_threshold and d.score is not None and d.model_hash
                assert d.verdict is (Verdict.BAD if d.score >= card_threshold else Verdict.GOOD)
                heat = log.load_heatmap(d)
                assert heat is not None and heat.dtype == np.uint8
                assert (inbox / "processed" / name).is_file()
            else:
                assert d.verdict is Verdict.NOT_INSPECTED and want in (d.reason or "")
                assert (inbox / "rejected" / name).is_file()
    # The inbox keeps only the file still being written; nothing else was left or lost.
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == [".still-writing.png.tmp"]
    assert [item.decision.part_id for item in seen] == [d.part_id for d in reversed(decisions)]


def test_start_up_registers_the_model_and_keeps_the_recorded_threshold(
    tiny_model: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    db = f"sqlite:///{tmp_path / 'log.sqlite'}"
    in_force = []
    # The first start records the model's threshold; the second changes nothing; the third's
    # configured threshold is not applied, because changing a recorded threshold needs a log-in.
    for threshold in (0.3, None, 0.25):
        config = StationConfig(
            source=f"hotfolder:{inbox}",
            model=tiny_model,
            db_url=db,
            media_root=tmp_path / "m",
            station_name="t",
            threshold=threshold,
        )
        runtime = build_runtime(config)
        in_force.append(runtime.threshold)
        runtime.close()
    with VisualLog(db, media_root=tmp_path / "m", station="t") as log:
        changes = log.threshold_changes()
        models = log.models()
    assert [(c.user, c.old, c.new) for c in changes] == [("system", None, 0.3)]
    assert in_force == [0.3, 0.3, 0.3]
    assert any(m.hash == changes[0].model_hash for m in models)


def test_writer_group_commit_falls_back_to_one_row_per_part(tmp_path: Path) -> None:
    """An odd part in a group costs the others nothing: each still gets exactly one row."""
    from datetime import UTC, datetime

    from core.common.types import Inspection, Part
    from core.station.writer import Job, record_group

    def part(i: int) -> Part:
        image, _ = part_image(12, i, defective=False, size=64)
        return Part(source_ref=f"cam#{i}", arrived_at=datetime.now(UTC), image=image)

    heat = np.zeros((8, 8), np.uint8)
    fine = Inspection(score=0.2, threshold=0.5, heatmap=heat, latency_ms=1.0)
    odd = Inspection(score=0.9, threshold=0.5, heatmap=heat.astype(np.float32), latency_ms=1.0)
    jobs = [Job(part(0), fine, None), Job(part(1), odd, None), Job(part(2), fine, None)]
    with VisualLog(f"sqlite:///{tmp_path / 'log.sqlite'}", media_root=tmp_path / "media") as log:
        done = record_group(log, jobs, "ab" * 32, "m")
        assert [d.error for d in done] == [None, None, None]
        assert [d.decision.verdict for d in done] == [Verdict.GOOD, Verdict.NOT_INSPECTED, Verdict.GOOD]
        assert "recording the decision failed" in (done[1].decision.reason or "")
        assert log.count() == 3 and log.verify().ok

        # A group without odd parts goes in as it is, on the same chain.
        more = [Job(part(i), fine, None) for i in (3, 4, 5)]
        done = record_group(log, more, "ab" * 32, "m")
        assert [d.decision.verdict for d in done] == [Verdict.GOOD] * 3
        assert log.count() == 6 and log.chain_head().seq == 6 and log.verify().ok


def _run_until(runtime: StationRuntime, rows: int, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while runtime.parts_done < rows:
        assert time.monotonic() < deadline, f"{runtime.parts_done} of {rows} parts after {limit_s} s"
        runtime.process_next(0.2)


def test_each_row_carries_the_threshold_in_force_also_after_a_change_at_run_time(
    tiny_model: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = _config(inbox, tiny_model, tmp_path, threshold=0.5, source_options=FAST_SOURCE)
    runtime = build_runtime(config)
    items = []
    runtime.listeners.append(items.append)

    def feed(first: int) -> None:
        for i in range(first, first + 4):
            image, _ = part_image(21, i, defective=bool(i % 2), size=96)
            cv2.imwrite(str(inbox / f"p{i}.png"), image)

    try:
        feed(0)
        _run_until(runtime, 4)
        # A supervisor changes it in the log while the line runs; the runtime reads it there.
        with VisualLog(config.db_url, media_root=config.media_root, station="t") as office:
            office.add_user("sara", role="admin", password="sara-password")
            sara = office.authenticate("sara", "sara-password")
            office.record_threshold_change(0.5, 0.0625, actor=sara, reason="run-time change")
        assert runtime.poll_threshold(force=True) == 0.0625
        assert runtime.info().threshold == 0.0625
        feed(4)
        _run_until(runtime, 8)
    finally:
        runtime.close()
    with VisualLog(config.db_url, media_root=config.media_root, station="t") as log:
        rows = {Path(d.source_ref).name: d for d in log.latest(100)}
    assert len(rows) == 8 and len(items) == 8
    for i in range(8):
        d = rows[f"p{i}.png"]
        want = 0.5 if i < 4 else 0.0625
        assert d.threshold == want, (i, d.threshold)
        assert d.score is not None
        assert d.verdict is (Verdict.BAD if d.score >= want else Verdict.GOOD)
    # What the listeners (GUI, outputs) were shown is what was stored.
    assert {i.decision.part_id: i.decision.threshold for i in items} == {
        d.part_id: d.threshold for d in rows.values()
    }
