from __future__ import annotations

from pathlib import Path

import pytest

from core.training.data import Sample, scan_folder, stratified_split


def _samples(n_good: int, n_bad: int) -> list[Sample]:
    out = [Sample(Path(f"good/g_{i}.png"), 0, f"g{i}") for i in range(n_good)]
    return out + [Sample(Path(f"bad/b_{i}.png"), 1, f"b{i}") for i in range(n_bad)]


def test_split_is_stratified_seeded_and_complete() -> None:
    samples = _samples(100, 30)
    a = stratified_split(samples, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=4)
    b = stratified_split(samples, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=4)
    assert a == b
    assert sorted(s.content_hash for part in a.values() for s in part) == sorted(
        s.content_hash for s in samples
    )
    for part in a.values():
        assert any(s.label == 1 for s in part) and any(s.label == 0 for s in part)
    assert len([s for s in a["val"] if s.label == 1]) == round(30 * 0.15)


def test_duplicates_and_groups_never_span_splits() -> None:
    samples = _samples(40, 40)
    samples.append(Sample(Path("good/copy_of_g_3.png"), 0, "g3"))  # same content as g_3
    parts = stratified_split(samples, {"train": 0.6, "val": 0.4}, seed=1)
    where = {s.path.name: name for name, part in parts.items() for s in part}
    assert where["copy_of_g_3.png"] == where["g_3.png"]
    grouped = stratified_split(
        _samples(40, 40), {"train": 0.6, "val": 0.4}, seed=1, group_pattern=r"_(\d+)\.png$"
    )
    where = {s.path.name: name for name, part in grouped.items() for s in part}
    assert all(where[f"g_{i}.png"] == where[f"b_{i}.png"] for i in range(40))


def test_scan_maps_casting_folder_names(tmp_path: Path) -> None:
    for folder in ("ok_front", "def_front", "unrelated"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jpeg").write_bytes(folder.encode())
    samples = scan_folder(tmp_path)
    assert [(s.path.parent.name, s.label) for s in samples] == [("def_front", 1), ("ok_front", 0)]
    (tmp_path / "def_front" / "x.jpeg").unlink()
    with pytest.raises(ValueError, match="both classes"):
        scan_folder(tmp_path)
