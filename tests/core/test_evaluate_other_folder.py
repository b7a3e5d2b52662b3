"""Evaluating a bundle on a folder it was not trained from (next month's photographs), issue 20."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.training.evaluation import evaluate


def _new_folder(tmp_path: Path) -> Path:
    from core.demo.line import generate_pairs

    root = tmp_path / "next-month"
    generate_pairs(root, 8, size=128, seed=11)
    return root


def _bundle_with_manifest(tiny_model: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the tiny bundle whose ``split.json`` ``edit`` changed."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_model, bundle)
    manifest = json.loads((bundle / "split.json").read_text())
    edit(manifest)
    (bundle / "split.json").write_text(json.dumps(manifest))
    return bundle


def test_a_bundle_evaluates_a_folder_it_was_not_trained_from(tiny_model: Path, tmp_path: Path) -> None:
    other = _new_folder(tmp_path)
    for split in ("all", "test"):
        out = tmp_path / f"eval-{split}"
        report = evaluate(tiny_model, other, out, split=split)
        # Every image of the new folder, none of the training folder's.
        assert (report["data"]["good"], report["data"]["bad"]) == (8, 8)
        assert str(other) in report["data"]["described"]
        # The leak check looks the training images up where they were trained from.
        leak = report["leak_check"]
        assert "skipped" not in leak, leak
        assert leak["good"]["n"] > 0 and leak["bad"]["n"] > 0
        assert report["problems"] == []
        assert (out / "report.md").is_file() and (out / "scores.csv").is_file()
        assert (out / "curves.png").is_file()


def test_the_leak_check_is_skipped_with_a_note_when_the_training_folder_is_gone(
    tiny_model: Path, tmp_path: Path
) -> None:
    bundle = _bundle_with_manifest(tiny_model, tmp_path, lambda m: m.update(root=str(tmp_path / "gone")))
    out = tmp_path / "eval"
    report = evaluate(bundle, _new_folder(tmp_path), out, split="all")
    assert "not under the training folder" in report["leak_check"]["skipped"]
    assert "Leak check skipped" in (out / "report.md").read_text()


def test_a_failing_part_of_the_report_keeps_the_rest(tiny_model: Path, tmp_path: Path) -> None:
    # A damaged manifest: its training entries lost their hashes. The leak check cannot run.
    def unhashed(manifest: dict[str, Any]) -> None:
        for item in manifest["splits"]["train"]:
            del item["sha256"]

    bundle = _bundle_with_manifest(tiny_model, tmp_path, unhashed)
    out = tmp_path / "eval"
    report = evaluate(bundle, _new_folder(tmp_path), out, split="all")
    assert "leak_check" not in report
    assert len(report["problems"]) == 1 and report["problems"][0].startswith("leak check failed: KeyError")
    assert (report["data"]["good"], report["data"]["bad"]) == (8, 8)
    written = json.loads((out / "report.json").read_text())
    assert written["problems"] == report["problems"]
    assert "Not in this report" in (out / "report.md").read_text()
    assert len((out / "scores.csv").read_text().splitlines()) == 17


def test_the_leak_check_of_a_run_on_good_parts_alone_is_skipped_with_a_note(
    tiny_model: Path, tmp_path: Path
) -> None:
    # A run on good parts alone has no bad training image to augment: the check once failed the
    # report's section with "need at least one array to stack" (seen on the casting photographs).
    def good_only(manifest: dict[str, Any]) -> None:
        manifest["splits"]["train"] = [item for item in manifest["splits"]["train"] if item["label"] == 0]

    bundle = _bundle_with_manifest(tiny_model, tmp_path, good_only)
    out = tmp_path / "eval"
    report = evaluate(bundle, _new_folder(tmp_path), out, split="all")
    assert "one class only" in report["leak_check"]["skipped"]
    assert report["problems"] == []
    assert "Leak check skipped" in (out / "report.md").read_text()
