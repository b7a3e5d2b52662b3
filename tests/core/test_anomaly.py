"""The good-only second opinion: threshold, bundle round trip, combined decision, ONNX parity (issue 20)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.common.types import Fired, Inspection, Verdict
from core.model.anomaly import ANOMALY_FILE, threshold_for_budget
from core.model.bundle import CARD_FILE, BundleError, card_sha256, read_card


@pytest.fixture(scope="module")
def anomaly_model(tmp_path_factory: pytest.TempPathFactory, pair_data: Path) -> Path:
    """A tiny_cnn bundle trained for real with the second opinion (``--anomaly``)."""
    from core.training.fit import TrainConfig, train

    out = tmp_path_factory.mktemp("anomaly-model")
    config = TrainConfig(
        name="tiny-anomaly", architecture="tiny_cnn", input_size=64, epochs=3, batch_size=16,
        val_fraction=0.25, test_fraction=0.0, group_pattern=r"_(\d+)\.png$", seed=1, views=4,
        anomaly=True, anomaly_dims=48,
    )  # fmt: skip
    train(config, pair_data, out, log=lambda _m: None)
    return out


def test_the_threshold_keeps_to_the_false_reject_budget() -> None:
    good = np.arange(1.0, 201.0)  # 200 good parts scoring 1..200
    assert threshold_for_budget(good, 0.01) == pytest.approx(198.5)  # 2 parts rejected
    assert (good >= threshold_for_budget(good, 0.01)).sum() == 2
    assert (good >= threshold_for_budget(good, 0.0)).sum() == 0
    assert (good >= threshold_for_budget(good, 0.05)).sum() == 10
    with pytest.raises(ValueError, match="validation good parts"):
        threshold_for_budget(np.array([]), 0.01)


def test_either_opinion_makes_a_part_bad_and_says_which() -> None:
    heat = np.zeros((4, 4), np.uint8)
    amap = np.full((4, 4), 200, np.uint8)

    def inspection(score: float, anomaly: float | None) -> Inspection:
        return Inspection(
            score=score, threshold=0.5, heatmap=heat, latency_ms=1.0, anomaly_score=anomaly,
            anomaly_threshold=None if anomaly is None else 10.0, anomaly_heatmap=None if anomaly is None else amap,
        )  # fmt: skip

    assert (inspection(0.2, 3.0).verdict, inspection(0.2, 3.0).fired) == (Verdict.GOOD, None)
    assert (inspection(0.7, 3.0).verdict, inspection(0.7, 3.0).fired) == (Verdict.BAD, Fired.CLASSIFIER)
    assert (inspection(0.2, 12.0).verdict, inspection(0.2, 12.0).fired) == (Verdict.BAD, Fired.ANOMALY)
    assert inspection(0.7, 12.0).fired == Fired.BOTH
    assert inspection(0.2, 12.0).shown_heatmap is amap  # the map of the check that fired
    assert inspection(0.7, 3.0).shown_heatmap is heat
    assert inspection(0.7, None).fired == Fired.CLASSIFIER  # a bundle without the second opinion


def test_the_bundle_carries_the_anomaly_model_hashed(anomaly_model: Path, tmp_path: Path) -> None:
    card = read_card(anomaly_model)
    assert card.anomaly is not None
    assert card.anomaly.layers == (1, 2) and card.anomaly.dims == 48 and card.anomaly.threshold > 0
    assert card.anomaly.metrics["val_fp_combined"] >= 0
    # The anomaly model is part of the model hash: its threshold edited is another model.
    doc = json.loads((anomaly_model / CARD_FILE).read_text())
    doc["anomaly"]["threshold"] *= 2
    assert card_sha256(doc) != card.content_sha256
    # A card without one keeps the hash it had before the field existed.
    plain = {k: v for k, v in card.model_dump(mode="json").items() if k != "anomaly"}
    assert card_sha256({**plain, "anomaly": None}) == card_sha256(plain)
    # Its tensors are checked like the weights.
    copy = tmp_path / "tampered"
    shutil.copytree(anomaly_model, copy)
    data = bytearray((copy / ANOMALY_FILE).read_bytes())
    data[-5] ^= 0x01
    (copy / ANOMALY_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match the card"):
        read_card(copy)
    (copy / ANOMALY_FILE).write_bytes(b"\x80\x04pickle")
    with pytest.raises(BundleError, match="not a safetensors file"):
        read_card(copy)
    (copy / ANOMALY_FILE).unlink()
    with pytest.raises(BundleError, match="missing"):
        read_card(copy)


def test_the_inspector_gives_both_opinions_in_one_pass(anomaly_model: Path, pair_data: Path) -> None:
    from core.imaging.decode import read_image
    from core.inference.inspector import Inspector

    images = [read_image(p) for p in sorted((pair_data / "bad").iterdir())[:3]]
    images += [read_image(p) for p in sorted((pair_data / "good").iterdir())[:3]]
    with (
        Inspector(anomaly_model, backend="torch") as both,
        Inspector(anomaly_model, backend="torch", second_opinion=False) as alone,
    ):
        combined, plain = both.inspect_batch(images), alone.inspect_batch(images)
    threshold = read_card(anomaly_model).anomaly.threshold  # type: ignore[union-attr]
    for c, p in zip(combined, plain, strict=True):
        assert c.score == pytest.approx(p.score, abs=1e-5)  # the classifier is the same
        assert p.anomaly_score is None and p.fired in (None, Fired.CLASSIFIER)
        assert c.anomaly_score is not None and c.anomaly_threshold == threshold
        assert c.anomaly_heatmap is not None and c.anomaly_heatmap.shape == (64, 64)
        assert c.verdict == (
            Verdict.BAD if c.score >= c.threshold or c.anomaly_score >= threshold else Verdict.GOOD
        )


def test_onnx_gives_the_same_four_outputs_in_one_graph(anomaly_model: Path, tmp_path: Path) -> None:
    from core.imaging.decode import read_image
    from core.inference.export import export_bundle
    from core.inference.inspector import Inspector
    from core.inference.onnx_bundle import ANOMALY_OUTPUT_NAMES

    bundle = tmp_path / "bundle"
    shutil.copytree(anomaly_model, bundle)
    onnx_card = export_bundle(bundle)
    assert tuple(onnx_card.output_names) == ANOMALY_OUTPUT_NAMES
    assert onnx_card.parity_max_rel_anomaly is not None and onnx_card.parity_max_rel_anomaly < 1e-3
    pairs = Path(json.loads((bundle / "split.json").read_text())["root"])
    images = [read_image(p) for p in sorted((pairs / "bad").iterdir())[:4]]
    with Inspector(bundle, backend="torch") as torch_run, Inspector(bundle, backend="onnx") as onnx_run:
        a, b = torch_run.inspect_batch(images), onnx_run.inspect_batch(images)
    for x, y in zip(a, b, strict=True):
        assert y.anomaly_score == pytest.approx(x.anomaly_score, rel=1e-3)
        assert np.abs(x.anomaly_heatmap.astype(int) - y.anomaly_heatmap.astype(int)).max() <= 2  # type: ignore[union-attr]
        assert y.score == pytest.approx(x.score, abs=1e-4)
    # Without the second opinion such a bundle runs on torch (the graph has it built in).
    with pytest.raises(ValueError, match="without the second opinion on torch"):
        Inspector(bundle, backend="onnx", second_opinion=False)


def test_evaluate_reports_each_opinion_alone_and_combined(anomaly_model: Path, tmp_path: Path) -> None:
    from core.training.evaluation import evaluate

    data = Path(json.loads((anomaly_model / "split.json").read_text())["root"])
    out = tmp_path / "eval"
    report = evaluate(anomaly_model, data, out, split="all", leak_check=False)
    section = report["second_opinion"]
    n_bad, n_good = report["data"]["bad"], report["data"]["good"]
    for name in ("classifier", "anomaly", "combined"):
        op = section[name]
        assert op["tp"] + op["fn"] == n_bad and op["tn"] + op["fp"] == n_good
    # Either opinion calls a part bad: the combined decision misses no more than either alone,
    # and rejects no fewer good parts.
    assert section["combined"]["fn"] <= min(section["classifier"]["fn"], section["anomaly"]["fn"])
    assert section["combined"]["fp"] >= max(section["classifier"]["fp"], section["anomaly"]["fp"])
    assert len(section["missed_by_both"]) == section["combined"]["fn"]
    assert section["classifier"] == report["at_chosen_threshold"]
    assert 0.0 <= section["anomaly_roc_auc"] <= 1.0
    assert (out / "curves_combined.png").is_file()
    rows = (out / "scores.csv").read_text().splitlines()
    assert rows[0] == "path,label,score,anomaly_score" and len(rows) == 1 + n_bad + n_good
    assert "The second opinion" in (out / "report.md").read_text()
    assert report["problems"] == []


def test_bench_runs_the_station_with_and_without_the_second_opinion(
    anomaly_model: Path, pair_data: Path, tmp_path: Path
) -> None:
    from core.station.bench import format_report, run_bench

    images = sorted((pair_data / "bad").glob("*.png"))[:4] + sorted((pair_data / "good").glob("*.png"))[:4]
    with_it = run_bench(
        anomaly_model, images, backend="torch", device="cpu", memory_every=0, work_dir=tmp_path
    )
    alone = run_bench(
        anomaly_model, images, backend="torch", device="cpu", memory_every=0, work_dir=tmp_path,
        second_opinion=False,
    )  # fmt: skip
    assert (with_it.second_opinion, alone.second_opinion) == (True, False)
    assert with_it.rows_logged == alone.rows_logged == 8
    # Either opinion calls a part bad: never fewer bad parts with the second opinion.
    assert with_it.verdicts["bad"] >= alone.verdicts["bad"]
    assert "with the second opinion" in format_report(with_it)
    assert "with the second opinion" not in format_report(alone)


def test_fit_anomaly_adds_the_second_opinion_to_a_trained_bundle(tiny_model: Path, tmp_path: Path) -> None:
    from core.cli import main

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_model, bundle)
    before = read_card(bundle)
    assert before.anomaly is None
    assert main(["fit-anomaly", str(bundle), "--dims", "24", "--budget", "0.05"]) == 0
    after = read_card(bundle)
    assert (
        after.anomaly is not None and after.anomaly.dims == 24 and after.anomaly.false_reject_budget == 0.05
    )
    # Another model in the log: the card (and so the model hash) changed, the weights did not.
    assert after.weights_sha256 == before.weights_sha256
    assert after.content_sha256 != before.content_sha256
    assert main(["fit-anomaly", str(tmp_path / "nothing")]) != 0  # no bundle: one clear error
