"""Reviewed parts exported as good/ and bad/ with a manifest, then read and trained on by ``inspector train``."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.cli.main import main as cli_main
from core.common.fileio import sha256_bytes
from core.common.types import Inspection, Part, Verdict
from core.imaging.decode import decode_image
from core.model.bundle import CARD_FILE
from core.reports.labelled_export import MANIFEST, export_labelled
from core.storage import VisualLog
from core.storage.auth import Actor
from core.training.data import LABELS, scan_folder

MODEL = sha256_bytes(b"the line's model")
T0 = datetime(2025, 3, 14, 6, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=30)
        return self.now


def _supervisor(log: VisualLog) -> Actor:
    """Anna, a supervisor, logged in (registered by the first admin)."""
    log.add_user("admin", role="admin", password="admin-password")
    admin = log.authenticate("admin", "admin-password")
    log.add_user("anna", role="supervisor", password="anna-password", actor=admin)
    return log.authenticate("anna", "anna-password")


def _review(log: VisualLog, who: Actor, part_id: str, verdict: Verdict) -> None:
    log.review(part_id, verdict=verdict, actor=who, comment="looked at it")


@pytest.fixture
def reviewed_log(tmp_path: Path, pair_data: Path) -> tuple[VisualLog, dict[str, Verdict], dict[str, bytes]]:
    """A real log of real part images: 16 parts, the truth known from the folder each came from.

    The model is wrong on a few (scores chosen so); 14 parts are reviewed with the truth, one of
    them twice (first wrongly, then corrected), one not-inspected part without an image is
    reviewed too, and 2 parts are never reviewed. Returns the log, the truth of each reviewed part and the original
    bytes of every part.
    """
    log = VisualLog(f"sqlite:///{tmp_path / 'log.sqlite'}", media_root=tmp_path / "media", clock=Clock())
    who = _supervisor(log)
    truth: dict[str, Verdict] = {}
    originals: dict[str, bytes] = {}
    files = [(p, Verdict.GOOD) for p in sorted((pair_data / "good").glob("*.png"))[:8]] + [
        (p, Verdict.BAD) for p in sorted((pair_data / "bad").glob("*.png"))[:8]
    ]
    for k, (path, label) in enumerate(files):
        data = path.read_bytes()
        part = Part(
            source_ref=str(path),
            arrived_at=T0,
            image=decode_image(data),
            encoded=data,
            content_hash=sha256_bytes(data),
        )
        wrong = k % 5 == 0
        score = (0.8 if label is Verdict.GOOD else 0.2) if wrong else (0.1 if label is Verdict.GOOD else 0.9)
        heat = part.image[::4, ::4].copy() if part.image is not None else None
        assert heat is not None
        decision = log.record(
            part, Inspection(score=score, threshold=0.5, heatmap=heat, latency_ms=3.0), model_hash=MODEL
        )
        originals[decision.part_id] = data
        if k % 6 == 5:
            continue  # never reviewed
        if k == 3:  # a slip, corrected: the newest review counts
            _review(log, who, decision.part_id, Verdict.BAD)
        _review(log, who, decision.part_id, label)
        truth[decision.part_id] = label
    skipped = log.record(
        Part(source_ref="cam#9", arrived_at=T0, image=None, error="torn frame"), None, model_hash=None
    )
    _review(log, who, skipped.part_id, Verdict.BAD)
    yield log, truth, originals  # type: ignore[misc]
    log.close()


def test_export_writes_class_folders_and_a_manifest(
    reviewed_log: tuple[VisualLog, dict[str, Verdict], dict[str, bytes]], tmp_path: Path
) -> None:
    log, truth, originals = reviewed_log
    # Someone swaps the picture of one reviewed part: it is no longer what was reviewed.
    swapped = sorted(truth)[4]
    decision = log.get(swapped)
    assert decision is not None and decision.image_path is not None
    log.media_path(decision.image_path).write_bytes(originals[sorted(truth)[5]])

    seen: list[tuple[int, int]] = []
    out = tmp_path / "export"
    result = export_labelled(log, out, progress=lambda done, total: seen.append((done, total)))

    exported = {p: v for p, v in truth.items() if p != swapped}
    assert result.good == sum(v is Verdict.GOOD for v in exported.values())
    assert result.bad == sum(v is Verdict.BAD for v in exported.values())
    assert seen[-1] == (len(truth) + 1, len(truth) + 1)
    reasons = dict(result.skipped)
    assert set(reasons) == {swapped, next(iter(set(_all_reviewed(log)) - set(truth)))}
    assert "changed" in reasons[swapped]
    assert any("no image" in why for why in reasons.values())

    for label in (Verdict.GOOD, Verdict.BAD):
        names = {p.stem for p in (out / label.value).iterdir()}
        assert names == {p for p, v in exported.items() if v is label}
    for part_id in exported:
        (file,) = out.glob(f"*/{part_id}.*")
        assert file.read_bytes() == originals[part_id]  # the original bytes, not a re-encoding

    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["counts"] == {"good": result.good, "bad": result.bad, "skipped": 2}
    assert {item["part_id"] for item in manifest["parts"]} == set(exported)
    for item in manifest["parts"]:
        data = (out / item["file"]).read_bytes()
        assert item["sha256"] == sha256_bytes(data) == item["recorded_sha256"]
        assert item["label"] == truth[item["part_id"]].value
        assert item["reviewed_by"] == "anna"
    corrected = [item for item in manifest["parts"] if item["reviews"] == 2]
    assert len(corrected) == 1 and corrected[0]["label"] == truth[corrected[0]["part_id"]].value
    assert "password" not in json.dumps(manifest)

    # The training loader reads it as it is: both classes, every image, the labels of the reviews.
    samples = scan_folder(out)
    assert len(samples) == result.parts
    assert {(s.path.stem, s.label) for s in samples} == {(p, LABELS[v.value]) for p, v in exported.items()}

    with pytest.raises(FileExistsError, match="not empty"):
        export_labelled(log, out)


def _all_reviewed(log: VisualLog) -> list[str]:
    from core.storage.history import HistoryQuery, ReviewState

    return [
        r.decision.part_id for r in log.history(HistoryQuery(review=ReviewState.REVIEWED), limit=100).rows
    ]


def test_cli_export_then_train_one_epoch(
    reviewed_log: tuple[VisualLog, dict[str, Verdict], dict[str, bytes]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log, truth, _ = reviewed_log
    out = tmp_path / "retrain-data"
    media = str(log.media_root)
    assert cli_main(["export-labelled", str(out), "--db", log.url, "--media-root", media]) == 0
    printed = capsys.readouterr().out
    assert f"{len(truth)} reviewed parts written" in printed and "skipped" in printed

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run = tmp_path / "run"
    code = cli_main(
        [
            "train", str(out), "--out", str(run), "--arch", "tiny_cnn", "--input-size", "32", "--epochs", "1",
            "--batch-size", "8", "--val-fraction", "0.25", "--test-fraction", "0", "--no-augment",
        ]
    )  # fmt: skip
    assert code == 0
    # Trained on every exported image, a bundle written.
    assert f"{len(truth)} images: train" in capsys.readouterr().out
    card = json.loads((run / CARD_FILE).read_text(encoding="utf-8"))
    assert card["name"] == "run"

    # A filter that keeps nothing, and a station that is not there, are refused in one line.
    assert (
        cli_main(["export-labelled", str(tmp_path / "none"), "--db", log.url, "--until", "2000-01-01"]) == 2
    )
    assert cli_main(["export-labelled", str(tmp_path / "x"), "--db", log.url, "--station", "nowhere"]) == 2
    assert "no station nowhere" in capsys.readouterr().err
