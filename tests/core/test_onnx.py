"""ONNX export: parity with PyTorch, hash checks, and a station that runs without torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.imaging.decode import read_image
from core.inference.export import HEATMAP_TOLERANCE, SCORE_TOLERANCE, OnnxExportError
from core.inference.onnx_bundle import ONNX_CARD_FILE, ONNX_FILE, read_onnx_card
from core.model.bundle import BundleError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny bundle, exported with ``inspector export --onnx``."""
    from core.cli import main

    folder = tmp_path_factory.mktemp("exported") / "tiny"
    shutil.copytree(tiny_model, folder)
    assert main(["export", str(folder), "--onnx"]) == 0
    return folder


def _images(pair_data: Path, n: int = 4) -> list[np.ndarray]:
    paths = sorted((pair_data / "bad").glob("*.png"))[:n] + sorted((pair_data / "good").glob("*.png"))[:n]
    return [read_image(p) for p in paths]


def test_export_writes_model_and_sidecar_with_hashes_and_parity(exported: Path) -> None:
    import onnxruntime as ort

    card, onnx_card = read_onnx_card(exported)
    assert (exported / ONNX_FILE).is_file() and (exported / ONNX_CARD_FILE).is_file()
    assert onnx_card.weights_sha256 == card.weights_sha256
    assert onnx_card.parity_max_abs_score <= SCORE_TOLERANCE
    assert onnx_card.parity_max_abs_heatmap <= HEATMAP_TOLERANCE
    session = ort.InferenceSession(str(exported / ONNX_FILE), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.type == "tensor(float)" and inp.shape[1:] == [1, 64, 64]
    assert isinstance(inp.shape[0], str)  # a dynamic batch axis
    assert [o.name for o in session.get_outputs()] == ["score", "cam"]


def test_onnx_inspector_matches_torch_and_pytorch_grad_cam(exported: Path, pair_data: Path) -> None:
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from core.inference.backends import OnnxBackend
    from core.inference.inspector import Inspector
    from core.model.architectures import cam_target_layer
    from core.model.bundle import load_net
    from core.model.explain import normalise_cams

    images = _images(pair_data)
    with (
        Inspector(exported, backend="onnx") as onnx,
        Inspector(exported, backend="torch", device="cpu") as eager,
    ):
        assert (onnx.backend, onnx.device) == ("onnx", "cpu")
        batch = onnx.inspect_batch(images)
        single = [onnx.inspect(img) for img in images]
        reference = eager.inspect_batch(images)
        # Each records what runs: the card (with the weights' hash), and on ONNX the graph too.
        assert onnx.model_hash != eager.model_hash
        assert eager.model_hash == read_onnx_card(exported)[0].content_sha256
    for a, b, c in zip(batch, single, reference, strict=True):
        assert a.heatmap.dtype == np.uint8 and a.heatmap.shape == (64, 64)
        assert abs(a.score - c.score) < 1e-5 and abs(b.score - c.score) < 1e-5
        assert np.abs(a.heatmap.astype(int) - c.heatmap.astype(int)).max() <= 1
        assert np.abs(b.heatmap.astype(int) - c.heatmap.astype(int)).max() <= 1
        assert a.verdict == c.verdict

    net, card = load_net(exported)
    x = card.preset.batch(images)
    with GradCAM(model=net, target_layers=[cam_target_layer(net)]) as cam:
        ref = cam(input_tensor=torch.from_numpy(x), targets=[ClassifierOutputTarget(1)] * len(x))
    _, raw = OnnxBackend(exported).run(x)
    assert np.abs(normalise_cams(raw, 64) - ref).max() <= 1e-3


def test_auto_backend_prefers_onnx_on_the_cpu_when_exported(exported: Path, tiny_model: Path) -> None:
    from core.inference.backends import resolve_backend

    assert resolve_backend(exported, "auto", "cpu") == "onnx"
    assert resolve_backend(tiny_model, "auto", "cpu") == "torch"  # no export: torch
    assert resolve_backend(tiny_model, "onnx") == "onnx"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_tampered_onnx_model_is_refused(exported: Path, tmp_path: Path) -> None:
    from core.inference.inspector import Inspector

    folder = _copy(exported, tmp_path / "b")
    data = bytearray((folder / ONNX_FILE).read_bytes())
    data[-10] ^= 0xFF
    (folder / ONNX_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match"):
        Inspector(folder, backend="onnx")


def test_export_of_other_weights_is_refused(exported: Path, tmp_path: Path) -> None:
    """A bundle retrained in place keeps its old model.onnx: that stale export must not run."""
    import torch

    from core.inference.inspector import Inspector
    from core.model.bundle import load_net, save_bundle

    folder = _copy(exported, tmp_path / "b")
    net, card = load_net(folder)
    with torch.no_grad():
        net.head[0].bias.add_(1.0)
    save_bundle(net, folder, **card.model_dump(exclude={"weights_sha256", "created_at"}))
    with pytest.raises(BundleError, match="export it again"):
        Inspector(folder, backend="onnx")


def _edit_card(folder: Path, **fields: object) -> None:
    card = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    card.update(
        fields
    )  # views and pooling are not part of the weights' hash: the same weights, used differently
    (folder / "model.json").write_text(json.dumps(card), encoding="utf-8")


def _onnx_matches_torch(folder: Path, original: Path, images: list[np.ndarray]) -> tuple[list, list]:
    """Inspect with ``folder``'s ONNX export and with ``original``; ONNX must match PyTorch on ``folder``.

    Returns the ONNX results and ``original``'s (eager PyTorch), part by part.
    """
    from core.inference.inspector import Inspector

    with (
        Inspector(folder, backend="onnx") as onnx,
        Inspector(folder, backend="torch", device="cpu") as eager,
        Inspector(original, backend="torch", device="cpu") as before,
    ):
        exported, reference, unchanged = (i.inspect_batch(images) for i in (onnx, eager, before))
    for a, b in zip(exported, reference, strict=True):
        assert abs(a.score - b.score) < 1e-5
        assert np.abs(a.heatmap.astype(int) - b.heatmap.astype(int)).max() <= 1
    return exported, unchanged


def test_export_with_four_views_matches_torch_and_a_card_asking_for_other_views_is_refused(
    tiny_model: Path, pair_data: Path, tmp_path: Path
) -> None:
    from core.cli import main
    from core.inference.inspector import Inspector

    folder = _copy(tiny_model, tmp_path / "b")
    _edit_card(folder, views=4)
    assert main(["export", str(folder), "--onnx"]) == 0
    _, onnx_card = read_onnx_card(folder)
    assert onnx_card.views == 4 and onnx_card.parity_max_abs_score <= SCORE_TOLERANCE
    four, single = _onnx_matches_torch(folder, tiny_model, _images(pair_data))
    assert max(abs(a.score - c.score) for a, c in zip(four, single, strict=True)) > 1e-4

    _edit_card(folder, views=8)
    with pytest.raises(BundleError, match="averages 4 view"):
        Inspector(folder, backend="onnx")


def test_missing_export_says_how_to_make_one(tiny_model: Path) -> None:
    from core.inference.inspector import Inspector

    with pytest.raises(BundleError, match="inspector export"):
        Inspector(tiny_model, backend="onnx")


def test_export_that_does_not_match_torch_writes_nothing(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.inference.export as onnx_export

    folder = _copy(tiny_model, tmp_path / "b")
    monkeypatch.setattr(onnx_export, "measure_parity", lambda *_a, **_k: (0.0, 0.2))
    with pytest.raises(OnnxExportError, match="does not match PyTorch"):
        onnx_export.export_bundle(folder)
    assert not (folder / ONNX_FILE).exists() and not (folder / ONNX_CARD_FILE).exists()


_NO_TORCH = """
import sys
for name in ("torch", "torchvision", "pytorch_grad_cam", "onnx"):
    sys.modules[name] = None  # any import of them now fails
import runpy
sys.argv = ["inspector", *sys.argv[1:]]
try:
    runpy.run_module("core.cli", run_name="__main__")
finally:
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision") and sys.modules[m])
    print("TORCH_MODULES", leaked, file=sys.stderr)
"""


def test_onnx_station_runs_without_torch(exported: Path, pair_data: Path, tmp_path: Path) -> None:
    """``inspector run --headless`` on a real hot folder with torch unimportable: every file one row
    and one JSON line, scored as PyTorch scores it, with the model hash and threshold in force."""
    import os

    from core.common.fileio import sha256_file
    from core.inference.inspector import Inspector
    from core.inference.onnx_bundle import run_sha256
    from core.model.bundle import read_card
    from core.storage import VisualLog

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    images = sorted((pair_data / "bad").glob("*.png"))[:3] + sorted((pair_data / "good").glob("*.png"))[:3]
    for path in images:
        shutil.copyfile(path, inbox / path.name)
    db = tmp_path / "log.sqlite"
    env = dict(
        os.environ,
        INSPECTOR_HOME=str(tmp_path / "home"),
        INSPECTOR_SOURCE_OPTIONS='{"settle_s": 0.1, "scan_interval_s": 0.1}',  # the environment override
        OMP_NUM_THREADS="1",
    )
    cmd = [
        sys.executable, "-c", _NO_TORCH, "run", "--headless",
        "--source", f"hotfolder:{inbox}", "--model", str(exported), "--db", f"sqlite:///{db}",
        "--station", "onnx-line", "--quit-after", str(len(images)), "--summary-s", "0",
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TORCH_MODULES []" in result.stderr
    lines = {Path(line["source"]).name: line for line in map(json.loads, result.stdout.splitlines())}
    assert sorted(lines) == sorted(p.name for p in images)
    card = read_card(exported)
    with VisualLog(f"sqlite:///{db}", media_root=tmp_path / "home" / "media", station="onnx-line") as log:
        rows = {
            Path(d.source_ref).name: (d.verdict.value, d.score, d.threshold, d.model_hash)
            for d in log.latest(100)
        }
    assert sorted(rows) == sorted(lines)
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == sorted(lines)
    with Inspector(exported, backend="torch", device="cpu") as eager:
        for path in images:
            expected = eager.inspect(read_image(path))
            verdict, score, threshold, model_hash = rows[path.name]
            assert (
                abs(score - expected.score) < 1e-4 and abs(lines[path.name]["score"] - expected.score) < 1e-4
            )
            assert verdict == lines[path.name]["verdict"] == expected.verdict.value
            assert threshold == lines[path.name]["threshold"] == card.threshold
            assert model_hash == run_sha256(card, sha256_file(exported / ONNX_FILE))  # the graph that ran


def test_onnx_predict_runs_without_torch(exported: Path, pair_data: Path, tmp_path: Path) -> None:
    from core.inference.inspector import Inspector

    image = sorted((pair_data / "bad").glob("*.png"))[0]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _NO_TORCH,
            "predict",
            str(exported),
            str(image),
            "--heatmap-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "TORCH_MODULES []" in result.stderr
    line = json.loads(result.stdout.strip())
    with Inspector(exported, backend="torch", device="cpu") as eager:
        expected = eager.inspect(read_image(image))
    assert abs(line["score"] - expected.score) < 1e-4
    assert line["verdict"] == expected.verdict.value
    assert Path(line["heatmap"]).is_file()


def _relit(image: np.ndarray) -> np.ndarray:
    """The same part under other lighting: darker, lower contrast, a lifted floor."""
    return np.clip(image.astype(np.float32) * 0.6 + 40.0, 0, 255).round().astype(np.uint8)


def test_per_image_normalisation_makes_lighting_say_nothing_on_both_backends(
    pair_data: Path, tmp_path: Path
) -> None:
    import cv2
    import torch

    from core.cli import main
    from core.imaging.preprocess import Preset
    from core.inference.inspector import Inspector
    from core.model.bundle import load_net
    from core.training.fit import TrainConfig, train

    images = _images(pair_data)
    relit = [_relit(im) for im in images]
    fixed, per_image = Preset(input_size=64), Preset(input_size=64, normalisation="per_image")
    assert np.abs(fixed.batch(images) - fixed.batch(relit)).mean() > 0.5
    assert np.abs(per_image.batch(images) - per_image.batch(relit)).mean() < 0.05

    folder = tmp_path / "per-image"
    config = TrainConfig(
        architecture="tiny_cnn", input_size=64, epochs=2, batch_size=16, val_fraction=0.25,
        test_fraction=0.0, group_pattern=r"_(\d+)\.png$", seed=1, normalisation="per_image",
    )  # fmt: skip
    train(config, pair_data, folder, log=lambda _m: None)
    assert json.loads((folder / "model.json").read_text())["normalisation"] == "per_image"
    assert main(["export", str(folder), "--onnx"]) == 0

    # The scores of the network on pictures normalised here, independently: mean 0, std 1 each.
    net, _ = load_net(folder)
    small = [cv2.resize(im, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float64) for im in images]
    x = np.stack([((s - s.mean()) / s.std())[None] for s in small]).astype(np.float32)
    with torch.inference_mode():
        expected = torch.softmax(net(torch.from_numpy(x)), 1)[:, 1].numpy()
    with (
        Inspector(folder, backend="onnx") as onnx,
        Inspector(folder, backend="torch", device="cpu") as eager,
    ):
        for inspector in (onnx, eager):
            assert inspector.preset == per_image
            scores = np.array([r.score for r in inspector.inspect_batch(images)])
            assert np.abs(scores - expected).max() < SCORE_TOLERANCE
            again = np.array([r.score for r in inspector.inspect_batch(relit)])
            assert np.abs(again - scores).max() < 0.01  # only the rounding to whole grey levels is left


def test_evaluate_says_when_an_onnx_export_would_be_faster(
    tiny_model: Path, exported: Path, pair_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    assert main(["evaluate", str(tiny_model), str(pair_data), "--split", "val", "--no-leak-check",
                 "--out", str(tmp_path / "a")]) == 0  # fmt: skip
    assert f"inspector export {tiny_model} --onnx" in capsys.readouterr().err
    assert main(["evaluate", str(exported), str(pair_data), "--split", "val", "--no-leak-check",
                 "--out", str(tmp_path / "b")]) == 0  # fmt: skip
    assert "no ONNX export" not in capsys.readouterr().err


def test_a_max_pooling_bundle_is_rebuilt_with_max_pooling_on_both_backends(
    tiny_model: Path, pair_data: Path, tmp_path: Path
) -> None:
    from torch import nn

    from core.cli import main
    from core.inference.inspector import Inspector
    from core.model.bundle import load_net
    from core.training.fit import TrainConfig, train

    card = train(
        TrainConfig(architecture="tiny_cnn", input_size=32, epochs=1, batch_size=16, val_fraction=0.25,
                    test_fraction=0.0, pooling="max", augment=False),
        pair_data, tmp_path / "trained", log=lambda _m: None,
    )  # fmt: skip
    assert card.pooling == "max" and isinstance(load_net(tmp_path / "trained")[0].pool, nn.AdaptiveMaxPool2d)

    folder = _copy(tiny_model, tmp_path / "b")
    _edit_card(folder, pooling="max")
    assert main(["export", str(folder), "--onnx"]) == 0
    maxed, avg = _onnx_matches_torch(folder, tiny_model, _images(pair_data))
    assert max(abs(a.score - c.score) for a, c in zip(maxed, avg, strict=True)) > 1e-3

    _edit_card(folder, pooling="avg")  # the graph still pools by max
    with pytest.raises(BundleError, match="pools its features by max"):
        Inspector(folder, backend="onnx")
