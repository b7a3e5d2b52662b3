"""The station pipeline benchmark (``inspector bench``) and the straightforward baseline."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import pytest

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
def test_every_part_gets_one_row_and_every_stage_is_timed(
    tiny_model: Path, image_dir: Path, pipelined: bool
) -> None:
    images = list_images(image_dir)
    assert len(images) == 7
    report = run_bench(
        tiny_model, images, backend="torch", device="cpu", parts=14, pipelined=pipelined, max_batch=4,
        memory_every=5,
    )  # fmt: skip
    assert report.parts == report.rows_logged == 14
    assert report.verdicts["not_inspected"] == 2  # the broken file, twice
    assert report.verdicts["good"] + report.verdicts["bad"] == 12
    assert set(report.stages) == set(STAGES)
    for name in STAGES:
        assert 0 < report.stages[name].p50_ms <= report.stages[name].p99_ms
    assert len(report.timings_s["inference"]) == 12 and len(report.timings_s["end_to_end"]) == 14
    assert report.parts_per_s > 0
    assert [m.parts for m in report.memory] == [5, 10]
    assert report.mode == ("pipelined" if pipelined else "serial")


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
        ["bench", str(folder), str(image_dir), "--backend", "onnx", "--device", "cpu", "--parts", "10",
         "--json", "--plot", str(plot)]
    )  # fmt: skip
    assert status == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert (run["backend"], run["device"], run["parts"], run["rows_logged"]) == ("onnx", "cpu", 10, 10)
    assert run["stages"]["inference"]["p50_ms"] > 0
    assert plot.stat().st_size > 1000


def test_the_error_of_a_stage_surfaces(
    tiny_model: Path, image_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.imaging.overlay

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("overlay exploded")

    monkeypatch.setattr(core.imaging.overlay, "make_overlay", broken)
    with pytest.raises(RuntimeError, match="overlay exploded"):
        run_bench(tiny_model, list_images(image_dir), backend="torch", device="cpu", parts=20, memory_every=0)


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
