"""Model construction details that training on a line's small datasets depends on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from core.model.architectures import OWN_ARCHITECTURES, build_model


@pytest.mark.parametrize("architecture", ["mobilenet_v3_small", "mobilenet_v3_large"])
def test_mobilenet_batchnorm_statistics_follow_the_weights(architecture: str) -> None:
    # torchvision's 0.01 (for ImageNet's thousands of steps per epoch) left the casting model
    # calling every part good or every part bad in eval mode for many epochs.
    net = build_model(architecture, channels=1)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum == pytest.approx(0.1) for m in norms)
    assert net.features[0][0].in_channels == 1  # type: ignore[index]


def test_fullres_cnn_keeps_the_input_resolution_in_its_first_stage() -> None:
    # A two-pixel pit must reach the first filters unsampled; the stride-2 stems of the
    # torchvision nets halve the picture before any filter has looked at it.
    import torch

    net = build_model("fullres_cnn", channels=1).eval()
    x = torch.zeros(1, 1, 96, 96)
    features = net.features
    assert isinstance(features, nn.Sequential)
    with torch.no_grad():
        first = features[0](x)
        last = features(x)
    assert first.shape[-2:] == (96, 96)
    assert last.shape[-2:] == (6, 6)


@pytest.mark.parametrize("architecture", OWN_ARCHITECTURES)
def test_our_own_nets_refuse_pretrained_weights(architecture: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_model(architecture, pretrained=str(tmp_path / "imagenet.pth"))


# The smallest torchvision net offered (core.model.architectures.ARCHITECTURES): 2.5 M weights.
SMALLEST = "mobilenet_v3_small"


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A state dict of the torchvision net saved with ``torch.save``, as downloaded weights are."""
    from torchvision import models as tvm

    torch.manual_seed(11)
    state = tvm.mobilenet_v3_small(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small-imagenet.pth"
    torch.save(state, path)
    return path, state


def test_pretrained_weights_come_from_a_local_file(
    imagenet_file: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    path, state = imagenet_file
    torch.manual_seed(12)  # another initialisation than the file's: a match below is the file's doing
    fresh = build_model(SMALLEST, channels=1).state_dict()
    net = build_model(SMALLEST, channels=1, pretrained=str(path)).state_dict()

    # Every feature tensor is the file's; the grayscale stem is the sum of its RGB filters.
    stem = "features.0.0.weight"
    assert torch.equal(net[stem], state[stem].sum(dim=1, keepdim=True))
    features = [k for k in state if k.startswith("features.") and k != stem]
    assert features and all(torch.equal(net[k], state[k]) for k in features)
    deep = "features.12.0.weight"
    assert not torch.equal(fresh[deep], state[deep]) and torch.equal(net[deep], state[deep])
    # The head keeps the file's hidden layer; its last layer is new, with two classes.
    assert torch.equal(net["head.0.weight"], state["classifier.0.weight"])
    assert net["head.3.weight"].shape == (2, state["classifier.3.weight"].shape[1])

    rgb = build_model(SMALLEST, channels=3, pretrained=str(path)).state_dict()
    assert torch.equal(rgb[stem], state[stem])


def test_pretrained_weights_in_a_settings_file_reach_the_trained_bundle(
    imagenet_file: tuple[Path, dict[str, torch.Tensor]], pair_data: Path, tmp_path: Path
) -> None:
    # The README's way: {"pretrained": "/path/w.pth"} in a --config file. A learning rate of
    # 1e-12 leaves the weights where the file put them, so the bundle shows where they came from.
    from core.cli import main
    from core.model.bundle import load_net

    path, state = imagenet_file
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({
        "architecture": SMALLEST, "pretrained": str(path), "input_size": 32, "epochs": 1, "lr": 1e-12,
        "weight_decay": 0.0, "batch_size": 16, "val_fraction": 0.25, "test_fraction": 0.0, "augment": False,
    }))  # fmt: skip
    assert main(["train", str(pair_data), "--out", str(tmp_path / "run"), "--config", str(settings)]) == 0
    net, card = load_net(tmp_path / "run")
    assert card.architecture == SMALLEST
    weights = net.state_dict()
    for key in ("features.12.0.weight", "features.5.block.0.0.weight"):
        torch.testing.assert_close(weights[key], state[key], atol=1e-6, rtol=0)


def test_a_missing_pretrained_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-weights.pth"
    with pytest.raises(FileNotFoundError) as caught:
        build_model(SMALLEST, pretrained=str(missing))
    assert str(missing) in str(caught.value)


class _Payload:
    """Pickles as a call of os.mkdir: loading the file with full pickle would run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_a_pretrained_file_with_code_is_refused_and_nothing_runs(
    pair_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pickle

    marker = tmp_path / "the-payload-ran"
    evil = tmp_path / "weights.pth"
    torch.save({"features.0.0.weight": torch.zeros(1), "extra": _Payload(marker)}, evil)
    with pytest.raises(pickle.UnpicklingError):
        build_model(SMALLEST, pretrained=str(evil))
    assert not marker.exists()

    # Through the command line: one line that names the file and says why; exit status 2.
    from core.cli import main

    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"architecture": SMALLEST, "pretrained": str(evil), "input_size": 32}))
    status = main(["train", str(pair_data), "--out", str(tmp_path / "run"), "--config", str(settings)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and not marker.exists()
    assert err[-1].startswith("inspector: pretrained weights ") and str(evil) in err[-1]
    assert "refused" in err[-1] and "Traceback" not in "\n".join(err)
