"""``inspector log``: the newest decisions of a real SQLite visual log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.cli import main
from core.common.types import Part
from core.imaging.decode import read_image
from core.inference.inspector import Inspector
from core.storage import VisualLog


@pytest.fixture
def log_with_rows(tiny_model: Path, pair_data: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """A log of station ``line-7``: four parts inspected by the tiny model, then one unreadable file."""
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    paths = [*sorted((pair_data / "good").glob("*.png"))[:2], *sorted((pair_data / "bad").glob("*.png"))[:2]]
    refs = []
    with Inspector(tiny_model, backend="torch", device="cpu") as inspector, VisualLog(
        url, media_root=tmp_path / "media", station="line-7"
    ) as log:  # fmt: skip
        for path in paths:
            image = read_image(path)
            part = Part(
                source_ref=str(path), arrived_at=datetime.now(UTC), image=image, encoded=path.read_bytes()
            )
            log.record(part, inspector.inspect(image), model_hash=inspector.model_hash)
            refs.append(str(path))
        broken = Part(source_ref="/inbox/broken.png", arrived_at=datetime.now(UTC), image=None,
                      error="not an image")  # fmt: skip
        log.record(broken, None, model_hash=None)
        refs.append(broken.source_ref)
    return url, refs


def test_log_prints_the_newest_decisions_first_and_the_counts(
    log_with_rows: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, refs = log_with_rows
    assert main(["log", "--db", url, "--last", "3"]) == 0  # the only station: no --station needed
    *rows, counts = capsys.readouterr().out.splitlines()
    assert len(rows) == 3
    assert [row.split()[4] for row in rows] == [refs[4], refs[3], refs[2]]  # newest first
    assert rows[0].split()[2:4] == ["not_inspected", "-"] and rows[0].endswith("not an image")
    for row in rows[1:]:
        verdict, score = row.split()[2:4]
        assert verdict in ("good", "bad") and 0.0 <= float(score) <= 1.0
    total = dict(item.split(": ") for item in counts.removeprefix("line-7: ").split(", "))
    assert int(total["not_inspected"]) == 1 and int(total["good"]) + int(total["bad"]) == 4


def test_log_of_several_stations_asks_which(
    log_with_rows: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = log_with_rows
    with VisualLog(url, media_root=tmp_path / "media", station="line-8") as other:
        other.record(
            Part(
                source_ref="/other/broken.png", arrived_at=datetime.now(UTC), image=None, error="empty file"
            ),
            None,
            model_hash=None,
        )
    assert main(["log", "--db", url]) == 2
    assert (
        capsys.readouterr().err
        == "inspector: the log holds several stations; choose one with --station (line-7, line-8)\n"
    )
    assert main(["log", "--db", url, "--station", "line-8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "/other/broken.png" in out[0] and out[1].startswith("line-8: ")
