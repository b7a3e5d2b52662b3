"""An attacker's edits of a model bundle: each is refused or changes the model hash the log records.

Every case works on a real copy of the tiny trained bundle (and of its real ONNX export), through
the ``Inspector`` with both backends and through ``inspector predict`` (one line, exit 2).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.cli import main
from core.imaging.decode import read_image
from core.inference.inspector import Inspector
from core.inference.onnx_bundle import ONNX_CARD_FILE, ONNX_FILE
from core.model.bundle import CARD_FILE, WEIGHTS_FILE, BundleError, read_card


@pytest.fixture(scope="module")
def exported(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny bundle, exported with ``inspector export --onnx``."""
    folder = tmp_path_factory.mktemp("tamper-exported") / "tiny"
    shutil.copytree(tiny_model, folder)
    assert main(["export", str(folder), "--onnx"]) == 0
    return folder


@pytest.fixture(scope="module")
def other_export(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle with other weights (its bad logit raised), exported: another network."""
    import torch

    from core.model.bundle import load_net, save_bundle

    folder = tmp_path_factory.mktemp("tamper-other") / "tiny"
    shutil.copytree(tiny_model, folder)
    net, card = load_net(folder)
    with torch.no_grad():
        net.head[0].bias[1] += 3.0
    save_bundle(net, folder, **card.model_dump(exclude={"weights_sha256", "created_at", "software_version"}))
    assert main(["export", str(folder), "--onnx"]) == 0
    return folder


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, **fields: Any) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.update(fields)
    path.write_text(json.dumps(doc), encoding="utf-8")


def _hash(bundle: Path, backend: str, **kwargs: Any) -> str:
    with Inspector(bundle, backend=backend, device="cpu", **kwargs) as inspector:
        return inspector.model_hash


def _image(pair_data: Path) -> Path:
    return sorted((pair_data / "bad").glob("*.png"))[0]


def _predict_refused(capsys: pytest.CaptureFixture[str], bundle: Path, image: Path, backend: str) -> str:
    """``inspector predict``: exit 2, nothing on stdout, one line on stderr (returned)."""
    capsys.readouterr()
    assert main(["predict", str(bundle), str(image), "--backend", backend, "--device", "cpu"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inspector: "), err
    return lines[0]


# --- 1. the model hash covers the card, the weights and the graph that runs -------------------------


@pytest.mark.parametrize(
    "edit", [{"threshold": 0.01}, {"pooling": "max"}, {"normalisation": "per_image"}, {"mean": 0.4}]
)
def test_a_card_edit_changes_the_model_hash_the_log_records(
    tiny_model: Path, tmp_path: Path, edit: dict[str, Any]
) -> None:
    """Weights untouched, decisions changed: the log must not show the same model."""
    before = _hash(tiny_model, "torch")
    folder = _copy(tiny_model, tmp_path / "b")
    _edit_json(folder / CARD_FILE, **edit)
    after = _hash(folder, "torch")
    assert len(after) == 64 and after != before
    assert before != read_card(tiny_model).weights_sha256  # the hash is more than the weights'


def test_what_does_not_decide_leaves_the_model_hash_alone(tiny_model: Path, tmp_path: Path) -> None:
    """A run-time threshold is recorded with each decision, not in the model hash; the card's
    write time and writer version do not change what the model does."""
    before = _hash(tiny_model, "torch")
    folder = _copy(tiny_model, tmp_path / "b")
    _edit_json(folder / CARD_FILE, created_at="2001-01-01T00:00:00+00:00", software_version="0.0.1")
    with Inspector(folder, backend="torch", device="cpu", threshold=0.123) as inspector:
        assert inspector.model_hash == before and inspector.threshold == 0.123
        assert inspector.inspect(np.zeros((64, 64), np.uint8)).threshold == 0.123


def test_the_onnx_run_is_its_own_model_hash_and_a_swapped_graph_changes_it(
    exported: Path, other_export: Path, tmp_path: Path, pair_data: Path
) -> None:
    """A model.onnx swapped in with a patched sidecar runs another network: not under the same hash."""
    torch_hash, onnx_hash = _hash(exported, "torch"), _hash(exported, "onnx")
    assert onnx_hash != torch_hash  # the graph that runs is part of what is recorded

    folder = _copy(exported, tmp_path / "b")
    shutil.copyfile(other_export / ONNX_FILE, folder / ONNX_FILE)
    other_sha = json.loads((other_export / ONNX_CARD_FILE).read_text())["onnx_sha256"]
    _edit_json(folder / ONNX_CARD_FILE, onnx_sha256=other_sha)  # the attacker fixes the sidecar's claim
    image = read_image(_image(pair_data))
    with (
        Inspector(folder, backend="onnx", device="cpu") as swapped,
        Inspector(exported, backend="onnx") as real,
    ):
        assert abs(swapped.inspect(image).score - real.inspect(image).score) > 1e-3  # another net runs
        assert swapped.model_hash not in (onnx_hash, torch_hash)


def test_the_model_hash_is_recomputed_from_what_the_log_keeps(exported: Path, tmp_path: Path) -> None:
    """An auditor holding the registered metadata recomputes the hash; an edited copy does not fit."""
    from core.inference.onnx_bundle import model_hash_of

    for backend in ("torch", "onnx"):
        with Inspector(exported, backend=backend, device="cpu") as inspector:
            metadata = inspector.model_metadata
            assert ("onnx_sha256" in metadata) == (backend == "onnx")
            assert model_hash_of(metadata) == inspector.model_hash
            assert model_hash_of({**metadata, "threshold": 0.01}) != inspector.model_hash


def test_a_card_edited_after_the_onnx_export_is_refused_on_the_onnx_path(
    exported: Path, tmp_path: Path, pair_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(exported, tmp_path / "b")
    _edit_json(folder / CARD_FILE, threshold=0.01)
    with pytest.raises(BundleError, match="export it again"):
        Inspector(folder, backend="onnx")
    assert "export it again" in _predict_refused(capsys, folder, _image(pair_data), "onnx")
    assert main(["export", str(folder), "--onnx"]) == 0  # what the message says mends it
    with Inspector(folder, backend="onnx") as inspector:
        assert inspector.threshold == 0.01


def test_an_export_from_before_card_hashes_still_runs(exported: Path, tmp_path: Path) -> None:
    """A sidecar written before the card hash was recorded loads; the recorded model hash is the
    same as a new export's, so an edited card still shows in the log."""
    folder = _copy(exported, tmp_path / "b")
    doc = json.loads((folder / ONNX_CARD_FILE).read_text())
    doc.pop("card_sha256", None)
    doc["format_version"] = 1
    (folder / ONNX_CARD_FILE).write_text(json.dumps(doc))
    assert _hash(folder, "onnx") == _hash(exported, "onnx")
    _edit_json(folder / CARD_FILE, threshold=0.01)
    assert _hash(folder, "onnx") != _hash(exported, "onnx")


def test_a_graph_for_another_input_is_refused(exported: Path, tiny_model: Path, tmp_path: Path) -> None:
    """A swapped graph that takes 32 px parts under a card that says 64 px: refused at load,
    not a failed inspection for every part."""
    small = _copy(tiny_model, tmp_path / "small")
    _edit_json(small / CARD_FILE, input_size=32)
    assert main(["export", str(small), "--onnx"]) == 0
    folder = _copy(exported, tmp_path / "b")
    shutil.copyfile(small / ONNX_FILE, folder / ONNX_FILE)
    _edit_json(
        folder / ONNX_CARD_FILE, onnx_sha256=json.loads((small / ONNX_CARD_FILE).read_text())["onnx_sha256"]
    )
    with pytest.raises(BundleError, match="input"):
        Inspector(folder, backend="onnx")


# --- 2. the card is validated at load --------------------------------------------------------------


BAD_CARDS = [
    ("input_size", 0),
    ("input_size", 60000),
    ("std", 0),
    ("std", -0.25),
    ("std", math.nan),
    ("mean", math.inf),
    ("views", 3),
    ("architecture", "vgg99"),
    ("threshold", 1.5),
    ("threshold", -0.1),
    ("threshold", math.nan),
    ("channels", 2),
    ("weights_sha256", "abc"),
    ("format_version", 99),
]


@pytest.mark.parametrize(("field", "value"), BAD_CARDS, ids=[f"{f}={v}" for f, v in BAD_CARDS])
def test_a_card_out_of_range_is_refused_naming_the_field(
    tiny_model: Path, tmp_path: Path, field: str, value: Any
) -> None:
    folder = _copy(tiny_model, tmp_path / "b")
    _edit_json(folder / CARD_FILE, **{field: value})
    with pytest.raises(BundleError, match=field) as caught:
        read_card(folder)
    assert "unreadable model card" in str(caught.value)
    with pytest.raises(BundleError, match=field):
        Inspector(folder, backend="torch", device="cpu")


def test_a_bad_card_is_refused_on_the_onnx_path_and_by_predict(
    exported: Path, tmp_path: Path, pair_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(exported, tmp_path / "b")
    _edit_json(folder / CARD_FILE, std=0)
    with pytest.raises(BundleError, match="std"):
        Inspector(folder, backend="onnx")
    for backend in ("onnx", "torch"):
        line = _predict_refused(capsys, folder, _image(pair_data), backend)
        assert "std" in line and "0.001" in line  # the field and its allowed range


def test_a_huge_input_size_is_refused_by_predict(
    tiny_model: Path, tmp_path: Path, pair_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(tiny_model, tmp_path / "b")
    _edit_json(folder / CARD_FILE, input_size=60000)
    line = _predict_refused(capsys, folder, _image(pair_data), "torch")
    assert "input_size" in line and "4096" in line


# --- 3. model files are never unpickled ----------------------------------------------------------


def _pickle_as_weights(tiny_model: Path, folder: Path, *, patch_card: bool) -> None:
    """torch.save's pickle (zip) renamed to model.safetensors; the card's hash patched to fit."""
    import torch

    from core.common.fileio import sha256_file
    from core.model.bundle import load_net

    net, _ = load_net(tiny_model)
    torch.save(net.state_dict(), folder / WEIGHTS_FILE)
    if patch_card:
        _edit_json(folder / CARD_FILE, weights_sha256=sha256_file(folder / WEIGHTS_FILE))


@pytest.mark.parametrize("patch_card", [True, False], ids=["card-patched", "card-as-was"])
def test_a_pickle_renamed_to_safetensors_is_refused(
    tiny_model: Path, tmp_path: Path, pair_data: Path, capsys: pytest.CaptureFixture[str], patch_card: bool
) -> None:
    folder = _copy(tiny_model, tmp_path / "b")
    _pickle_as_weights(tiny_model, folder, patch_card=patch_card)
    message = "not a safetensors file; refusing to load it \\(model files are never unpickled\\)"
    with pytest.raises(BundleError, match=message):
        Inspector(folder, backend="torch", device="cpu")
    with pytest.raises(BundleError, match=message):
        read_card(folder)
    assert "never unpickled" in _predict_refused(capsys, folder, _image(pair_data), "torch")


def test_a_truncated_safetensors_file_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    """A header that promises more than the file holds: refused before any tensor is read."""
    from core.common.fileio import sha256_file

    folder = _copy(tiny_model, tmp_path / "b")
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    _edit_json(folder / CARD_FILE, weights_sha256=sha256_file(folder / WEIGHTS_FILE))
    with pytest.raises(BundleError, match="not a safetensors file"):
        Inspector(folder, backend="torch", device="cpu")
