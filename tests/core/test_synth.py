"""Tests for the synthetic part generator (core.synth: parts, defects, dataset, feeder)."""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.synth import feeder
from core.synth.dataset import generate_dataset
from core.synth.defects import DEFECT_KINDS
from core.synth.feeder import feed_hot_folder
from core.synth.parts import PartSpec, part_image, render_part

SIZE = 256  # small enough to keep the suite fast, large enough for every defect to show


def blur_margin_px(size: int) -> int:
    """How far blur can carry a pixel's change (4 sigma at the largest focus blur), plus one."""
    return math.ceil(4 * 1.6 * size / 1024) + 1


def distance_map(size: int, spec: PartSpec) -> np.ndarray:
    cx, cy = spec.center_xy
    ys, xs = np.mgrid[0:size, 0:size]
    return np.hypot(xs - cx, ys - cy)


def read_gray(path: Path) -> np.ndarray:
    image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


# --- determinism ---------------------------------------------------------------------------


def test_part_image_is_deterministic_and_independent_of_other_calls() -> None:
    first, first_spec = part_image(7, 3, defective=True, size=SIZE)
    part_image(7, 4, defective=False, size=SIZE)  # unrelated calls must not matter
    render_part(np.random.default_rng(99), defective=True, size=SIZE)
    again, again_spec = part_image(7, 3, defective=True, size=SIZE)
    assert np.array_equal(first, again)
    assert first_spec == again_spec

    other, _ = part_image(7, 5, defective=True, size=SIZE)
    other_seed, _ = part_image(8, 3, defective=True, size=SIZE)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, other_seed)


def test_generate_dataset_twice_gives_identical_bytes(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    paths_a = generate_dataset(
        tmp_path / "a", n_good=3, n_bad=2, size=64, seed=5, progress=lambda d, t: calls.append((d, t))
    )
    paths_b = generate_dataset(tmp_path / "b", n_good=3, n_bad=2, size=64, seed=5)

    rel_a = [p.relative_to(tmp_path / "a").as_posix() for p in paths_a]
    assert rel_a == [
        "good/good_00000.png",
        "good/good_00001.png",
        "good/good_00002.png",
        "bad/bad_00000.png",
        "bad/bad_00001.png",
    ]
    assert [p.relative_to(tmp_path / "b").as_posix() for p in paths_b] == rel_a
    for a, b in zip(paths_a, paths_b, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    # Only the PNGs: no leftovers from atomic writes.
    assert sorted(
        p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file()
    ) == sorted(rel_a)

    # The files hold exactly the rendered parts, so the demo trains on what part_image draws.
    expected, _ = part_image(5, 1, defective=True, size=64)
    assert np.array_equal(read_gray(paths_a[4]), expected)
    expected, _ = part_image(5, 2, defective=False, size=64)
    assert np.array_equal(read_gray(paths_a[2]), expected)


# --- geometry and background ------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 1024])
def test_size_is_honoured(size: int) -> None:
    image, spec = part_image(0, 0, defective=True, size=size)
    assert image.shape == (size, size)
    assert image.dtype == np.uint8
    assert 0.35 * size < spec.radius_px < 0.45 * size
    # The part itself is drawn at that scale: bright pixels reach out to about the radius.
    on_part = image > 20
    dist = distance_map(size, spec)
    assert dist[on_part].max() == pytest.approx(spec.radius_px, abs=2 + size * 0.01)


def test_background_is_black_and_part_is_fully_in_frame() -> None:
    for defective in (False, True):
        for index in range(15):
            image, spec = part_image(11, index, defective=defective, size=SIZE)
            dist = distance_map(SIZE, spec)
            outside = dist > spec.radius_px + blur_margin_px(SIZE)
            assert image[outside].max() == 0
            for corner in (image[:8, :8], image[:8, -8:], image[-8:, :8], image[-8:, -8:]):
                assert corner.max() == 0
            # Every lit pixel keeps a black border around it: nothing touches the frame.
            assert image[:2].max() == 0 and image[-2:].max() == 0
            assert image[:, :2].max() == 0 and image[:, -2:].max() == 0
            cx, cy = spec.center_xy
            assert spec.radius_px < min(cx, cy, SIZE - 1 - cx, SIZE - 1 - cy)
            # And the part is really there: most of its disc is lit metal.
            assert np.mean(image[dist < spec.radius_px * 0.9] > 30) > 0.8


@pytest.mark.parametrize("size", [32, 48, 64, 100])
def test_small_parts_do_not_touch_the_frame(size: int) -> None:
    for index in range(40):
        image, _ = part_image(1, index, defective=index % 2 == 1, size=size)
        assert image[0].max() == 0 and image[-1].max() == 0
        assert image[:, 0].max() == 0 and image[:, -1].max() == 0


def test_good_parts_vary_in_pose_and_exposure() -> None:
    specs = []
    means = []
    for index in range(12):
        image, spec = part_image(3, index, defective=False, size=SIZE)
        assert spec.defects == () and spec.defective is False
        specs.append(spec)
        means.append(float(image[distance_map(SIZE, spec) < spec.radius_px * 0.8].mean()))
    rotations = [s.rotation_deg for s in specs]
    assert all(0.0 <= r < 360.0 for r in rotations)
    assert max(rotations) - min(rotations) > 90.0
    assert len({round(s.center_xy[0], 3) for s in specs}) == len(specs)
    assert max(s.radius_px for s in specs) - min(s.radius_px for s in specs) > 0.02 * SIZE
    assert max(means) - min(means) > 10.0


# --- defects -------------------------------------------------------------------------------


def test_defects_lie_on_the_part_and_cover_every_kind() -> None:
    kinds_seen: set[str] = set()
    for index in range(60):
        image, spec = part_image(21, index, defective=True, size=SIZE)
        assert spec.defective is True
        assert 1 <= len(spec.defects) <= 3
        cx, cy = spec.center_xy
        r = spec.radius_px
        for defect in spec.defects:
            assert defect.kind in DEFECT_KINDS
            kinds_seen.add(defect.kind)
            x0, y0, x1, y1 = defect.bbox
            assert x0 < x1 and y0 < y1
            # Inside the square around the part disc ...
            assert cx - r - 1 <= x0 and x1 <= cx + r + 2
            assert cy - r - 1 <= y0 and y1 <= cy + r + 2
            # ... and overlapping the disc well, not just touching it from outside.
            nearest_x = min(max(cx, x0), x1)
            nearest_y = min(max(cy, y0), y1)
            assert math.hypot(nearest_x - cx, nearest_y - cy) < 0.97 * r
            if defect.kind == "corrupted":
                # A corrupted block is a rectangle of image, entirely on the part.
                for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
                    assert math.hypot(x - cx, y - cy) <= r
            if defect.kind in ("blotch", "scratch"):
                # Drawn only within 0.97 r, so the far side of the box can reach at most there.
                farthest_x = x0 if abs(x0 - cx) > abs(x1 - cx) else x1
                farthest_y = y0 if abs(y0 - cy) > abs(y1 - cy) else y1
                assert min(abs(farthest_x - cx), abs(farthest_y - cy)) <= r
    assert kinds_seen == set(DEFECT_KINDS)


@pytest.mark.parametrize("seed", range(12))
def test_defects_change_the_good_part_only_inside_their_boxes(seed: int) -> None:
    good, good_spec = render_part(np.random.default_rng(seed), defective=False, size=SIZE)
    bad, bad_spec = render_part(np.random.default_rng(seed), defective=True, size=SIZE)
    assert (good_spec.center_xy, good_spec.radius_px, good_spec.rotation_deg) == (
        bad_spec.center_xy,
        bad_spec.radius_px,
        bad_spec.rotation_deg,
    )
    assert bad_spec.defects

    diff = np.abs(good.astype(np.int16) - bad.astype(np.int16))
    allowed = np.zeros(diff.shape, bool)
    margin = blur_margin_px(SIZE)
    for defect in bad_spec.defects:
        x0, y0, x1, y1 = defect.bbox
        allowed[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin] = True
        inside = diff[y0:y1, x0:x1]
        # Clearly visible: a strong change over a fair number of pixels of the box.
        assert inside.max() >= 40, defect
        assert np.count_nonzero(inside >= 20) >= 6, defect
    assert diff[~allowed].max(initial=0) == 0
    # Everything that changed is on the part (or where the part was cut away).
    assert diff[distance_map(SIZE, bad_spec) > bad_spec.radius_px + margin].max(initial=0) == 0


def test_missing_regions_are_cut_to_black() -> None:
    found = 0
    for index in range(80):
        image, spec = part_image(4, index, defective=True, size=SIZE)
        dist = distance_map(SIZE, spec)
        for defect in spec.defects:
            if defect.kind != "missing":
                continue
            found += 1
            x0, y0, x1, y1 = defect.bbox
            box = image[y0:y1, x0:x1]
            on_disc = dist[y0:y1, x0:x1] < spec.radius_px - blur_margin_px(SIZE)
            # A real hole: a good share of the part inside the box is background-black.
            assert np.count_nonzero((box == 0) & on_disc) >= 0.15 * np.count_nonzero(on_disc)
    assert found >= 5


def test_defects_stay_visible_at_128_pixels() -> None:
    visible = 0
    total = 0
    for seed in range(40):
        good, _ = render_part(np.random.default_rng(seed), defective=False, size=512)
        bad, spec = render_part(np.random.default_rng(seed), defective=True, size=512)
        small_good = cv2.resize(good, (128, 128), interpolation=cv2.INTER_AREA).astype(np.int16)
        small_bad = cv2.resize(bad, (128, 128), interpolation=cv2.INTER_AREA).astype(np.int16)
        for defect in spec.defects:
            x0, y0, x1, y1 = (v // 4 for v in defect.bbox)
            region = np.abs(small_good - small_bad)[y0 : y1 + 1, x0 : x1 + 1]
            total += 1
            visible += int(region.max() >= 40)
    assert visible >= 0.9 * total


def test_render_rejects_tiny_images() -> None:
    with pytest.raises(ValueError):
        render_part(np.random.default_rng(0), defective=False, size=16)


# --- hot-folder feeder -----------------------------------------------------------------------


def test_feeder_writes_count_files_at_the_rate_and_leaves_no_temp_files(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    rate_hz = 40.0
    started = time.monotonic()
    written = feed_hot_folder(
        inbox, rate_hz=rate_hz, count=8, seed=2, bad_fraction=0.5, size=64, start_index=10
    )
    elapsed_s = time.monotonic() - started
    assert written == 8
    # Seven intervals between eight parts; generous upper bound for a loaded CI machine.
    assert 7 / rate_hz * 0.9 <= elapsed_s < 7 / rate_hz + 1.5

    names = sorted(os.listdir(inbox))
    assert len(names) == 8
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]
    assert [n[:11] for n in names] == [f"part_{i:06d}" for i in range(10, 18)]
    for name in names:
        index = int(name[5:11])
        label = name[12:-4]
        assert label in ("good", "bad")
        expected, _ = part_image(2, index, defective=label == "bad", size=64)
        assert np.array_equal(read_gray(inbox / name), expected)


def test_feeder_labels_are_deterministic_and_follow_bad_fraction(tmp_path: Path) -> None:
    fast = 1000.0
    feed_hot_folder(tmp_path / "a", rate_hz=fast, count=30, seed=9, bad_fraction=0.5, size=32)
    feed_hot_folder(tmp_path / "b", rate_hz=fast, count=30, seed=9, bad_fraction=0.5, size=32)
    names_a = sorted(os.listdir(tmp_path / "a"))
    assert names_a == sorted(os.listdir(tmp_path / "b"))
    bad = sum(n.endswith("_bad.png") for n in names_a)
    assert 5 <= bad <= 25  # about half, and certainly not all or none

    feed_hot_folder(tmp_path / "none", rate_hz=fast, count=5, bad_fraction=0.0, size=32)
    feed_hot_folder(tmp_path / "all", rate_hz=fast, count=5, bad_fraction=1.0, size=32)
    assert all(n.endswith("_good.png") for n in os.listdir(tmp_path / "none"))
    assert all(n.endswith("_bad.png") for n in os.listdir(tmp_path / "all"))


def test_feeder_renames_from_a_hidden_temp_file_in_the_same_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replaced: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def recording_replace(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        src_path, dst_path = Path(src), Path(dst)
        # At rename time the temp file holds the whole image already.
        assert read_gray(src_path).shape == (32, 32)
        replaced.append((src_path, dst_path))
        real_replace(src, dst)

    monkeypatch.setattr(feeder.os, "replace", recording_replace)
    feed_hot_folder(tmp_path, rate_hz=1000.0, count=3, size=32)
    assert len(replaced) == 3
    for src, dst in replaced:
        assert src.parent == dst.parent == tmp_path
        assert src.name.startswith(".") and src.name.endswith(".tmp")
        assert dst.name.startswith("part_") and dst.suffix == ".png"
        assert not src.exists() and dst.exists()


def test_feeder_stops_when_the_event_is_set(tmp_path: Path) -> None:
    stop = threading.Event()
    result: list[int] = []
    # Parts are due at 0, 0.5, 1.0 s; stopping at 0.6 s falls in the middle of a wait.
    worker = threading.Thread(
        target=lambda: result.append(feed_hot_folder(tmp_path, rate_hz=2.0, size=32, stop=stop))
    )
    worker.start()
    time.sleep(0.6)
    stop.set()
    stopped_at = time.monotonic()
    worker.join(timeout=2.0)
    assert not worker.is_alive()
    # The wait between parts wakes up on the event instead of sleeping out the interval.
    assert time.monotonic() - stopped_at < 0.2
    files = [n for n in os.listdir(tmp_path) if not n.startswith(".")]
    assert result == [len(files)]
    assert len(files) == 2


def test_feeder_with_stop_already_set_writes_nothing(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    assert feed_hot_folder(tmp_path, rate_hz=5.0, count=10, size=32, stop=stop) == 0
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs", [{"rate_hz": 0.0}, {"rate_hz": 1.0, "count": -1}, {"rate_hz": 1.0, "bad_fraction": 1.5}]
)
def test_feeder_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        feed_hot_folder(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_feeder_waits_while_the_hot_folder_is_gone_and_goes_on_when_it_is_back(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    stop = threading.Event()
    result: list[int] = []
    feeder = threading.Thread(
        target=lambda: result.append(feed_hot_folder(inbox, rate_hz=20.0, count=40, size=32, stop=stop))
    )
    feeder.start()
    try:
        deadline = time.monotonic() + 10
        while len(list(inbox.glob("part_*.png"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        shutil.rmtree(inbox)
        time.sleep(0.6)
        assert feeder.is_alive(), "the feeder died when its hot folder went away"
        assert not inbox.exists(), (
            "the feeder must not recreate the folder (the station would miss the outage)"
        )
        inbox.mkdir()
        feeder.join(timeout=20)
    finally:
        stop.set()
        feeder.join(timeout=5)
    assert result == [40], "the feeder did not write every part"
    names = sorted(p.name for p in inbox.glob("part_*.png"))
    # Every part written after the folder came back is there, none twice, none half-written.
    assert len(names) == len(set(names))
    assert names[-1].startswith("part_000039_")
    assert not list(inbox.glob(".*.tmp"))
