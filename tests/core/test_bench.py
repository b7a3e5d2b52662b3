"""``inspector bench``: the station's own runtime timed on a folder (and the straightforward baseline)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import pytest

from core.common.errors import UserError
from core.station.bench import STAGES, list_images, run_bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def image_dir(pair_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six JPEG parts in two class folders, plus one file that is not an image."""
    folder = tmp_path_factory.mktemp("bench-images")
    for label in ("good", "bad"):
        (folder / label).mkdir()
        for path in sorted((pair_data / label).glob("*.png"))[:3]:
            ok, jpeg = cv2.imencode(".jpg", cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
            assert ok
            (folder / label / f"{path.stem}.jpeg").write_bytes(jpeg.tobytes())
    (folder / "bad" / "zz_broken.jpeg").write_bytes(b"\xff\xd8\xff truncated")
    return folder


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "serial"])
def test_every_image_becomes_one_row_and_the_figures_agree(
    tiny_model: Path, image_dir: Path, tmp_path: Path, pipelined: bool
) -> None:
    images = list_images(image_dir)
    assert len(images) == 7
    report = run_bench(
        tiny_model, images, backend="torch", device="cpu", pipelined=pipelined, max_batch=4,
        memory_every=2, work_dir=tmp_path,
    )  # fmt: skip
    # Every file went through the real station: one committed row each, and out of the inbox.
    assert report.parts == report.rows_logged == report.images == 7
    assert report.files_left_in_inbox == 0
    assert report.verdicts["not_inspected"] == 1  # the broken file
    assert report.verdicts["good"] + report.verdicts["bad"] == 6
    assert list(tmp_path.iterdir()) == []  # the temporary station is gone

    timings = report.timings_s
    assert len(timings["inference"]) == len(timings["decode"]) == 6  # the broken file is not inspected
    assert len(timings["end_to_end"]) == len(timings["in_station"]) == 7
    # Each part waited in the inbox before the station took it, never the other way round.
    for end_to_end, in_station in zip(timings["end_to_end"], timings["in_station"], strict=True):
        assert 0 < in_station <= end_to_end
    for name in STAGES:
        assert 0 < report.stages[name].p50_ms <= report.stages[name].p99_ms <= report.stages[name].max_ms
    assert report.in_station.p50_ms <= report.end_to_end.p50_ms
    # Parts per second and elapsed time say the same thing.
    assert report.parts_per_s * report.wall_s == pytest.approx(report.parts, rel=0.01)
    assert report.wall_s >= report.end_to_end.max_ms / 1000 - 1e-3
    assert [m.parts for m in report.memory] == [2, 4, 6]
    # The peak is counted in KiB by the kernel, the samples in pages: equal within a rounding.
    assert report.peak_rss_mb is None or report.peak_rss_mb >= max(m.rss_mb for m in report.memory) - 0.5
    if pipelined:
        assert (report.mode, report.max_batch) == ("pipelined", 4)
        assert 1 <= report.mean_batch <= 4
    else:
        assert (report.mode, report.max_batch, report.mean_batch) == ("serial", 1, 1)


def test_files_published_at_a_rate_take_at_least_that_long(tiny_model: Path, image_dir: Path) -> None:
    images = [p for p in list_images(image_dir) if "broken" not in p.name][:4]
    report = run_bench(tiny_model, images, backend="torch", device="cpu", rate_hz=10, memory_every=0)
    assert report.parts == report.rows_logged == 4
    assert report.wall_s >= 0.3  # the 4th file appears 3/10 s after the first
    assert report.memory == ()


def test_the_same_bytes_are_one_part_and_more_parts_than_images_are_refused(
    tiny_model: Path, image_dir: Path, tmp_path: Path
) -> None:
    first = sorted((image_dir / "good").glob("*.jpeg"))[0]
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copyfile(first, folder / "a.jpeg")
    shutil.copyfile(first, folder / "b.jpeg")  # what the station would log once
    shutil.copyfile(sorted((image_dir / "bad").glob("*.jpeg"))[0], folder / "c.jpeg")
    report = run_bench(tiny_model, list_images(folder), backend="torch", device="cpu", memory_every=0)
    assert (report.images, report.duplicates_skipped, report.parts, report.rows_logged) == (2, 1, 2, 2)
    with pytest.raises(UserError, match="3 parts asked for, but only 2 distinct images"):
        run_bench(tiny_model, list_images(folder), backend="torch", device="cpu", parts=3)


def test_bench_command_reports_json_and_plots(
    tiny_model: Path, image_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model, folder)
    assert main(["export", str(folder), "--onnx"]) == 0
    capsys.readouterr()
    plot = tmp_path / "latency.png"
    status = main(
        ["bench", str(folder), str(image_dir), "--backend", "onnx", "--device", "cpu", "--parts", "5",
         "--json", "--plot", str(plot)]
    )  # fmt: skip
    assert status == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert (run["backend"], run["device"], run["parts"], run["rows_logged"]) == ("onnx", "cpu", 5, 5)
    assert run["stages"]["inference"]["p50_ms"] > 0 and run["end_to_end"]["p50_ms"] > 0
    assert plot.stat().st_size > 1000


def test_bench_command_on_a_folder_without_images_is_one_line(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    assert main(["bench", str(tiny_model), str(tmp_path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inspector: no images") and err.count("\n") == 1


def test_straightforward_station_baseline_runs(tiny_model: Path, image_dir: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "straightforward_station", ROOT / "benchmarks" / "straightforward_station.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    images = [p for p in list_images(image_dir) if "broken" not in p.name]
    result = module.run_straightforward(tiny_model, images, parts=4)
    assert result["parts"] == result["rows_logged"] == 4
    assert result["parts_per_s"] > 0
