"""Shared fixtures: generated parts and a really trained tiny model (seconds on two cores)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Skips that mean "a service this machine lacks": in CI (INSPECTOR_REQUIRE_SERVICES=1, set by
# .ci/run, which installs and starts every one of them) they are failures, so a broken install
# cannot turn the PostgreSQL, camera-stream, MQTT or disk-full tests into silent skips.
SERVICE_SKIPS = ("INSPECTOR_TEST_PG_URL", "ffmpeg", "mosquitto", "paho-mqtt", "tmpfs", "fork()")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get("INSPECTOR_REQUIRE_SERVICES") != "1":
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(service in reason for service in SERVICE_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"required service missing (INSPECTOR_REQUIRE_SERVICES=1): {reason}"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing a test does lands in the real user data directory."""
    monkeypatch.setenv("INSPECTOR_HOME", str(tmp_path / "inspector-home"))


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashes() -> None:
    """Argon2 with its cheapest parameters in tests (a hash carries its parameters, so the code
    under test is the same; the default costs ~0.3 s per hash on two loaded cores)."""
    from argon2 import PasswordHasher, profiles

    import core.storage.auth as auth

    auth.HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)


@pytest.fixture(scope="session")
def pair_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled folder of 40 good/bad pairs of generated parts at 128 px."""
    from core.demo.line import generate_pairs

    root = tmp_path_factory.mktemp("pairs")
    generate_pairs(root, 40, size=128, seed=3)
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, pair_data: Path) -> Path:
    """A tiny_cnn bundle trained for real (3 epochs at 64 px)."""
    from core.training.fit import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-model")
    config = TrainConfig(
        name="tiny",
        architecture="tiny_cnn",
        input_size=64,
        epochs=3,
        batch_size=16,
        val_fraction=0.25,
        test_fraction=0.0,
        augment=True,
        group_pattern=r"_(\d+)\.png$",
        seed=1,
    )
    train(config, pair_data, out, log=lambda _m: None)
    return out


@pytest.fixture
def tampered_model(tiny_model: Path, tmp_path: Path) -> Path:
    """A copy of ``tiny_model`` with one byte of its weights flipped: its card's hash no longer fits."""
    import shutil

    from core.model.bundle import WEIGHTS_FILE

    copy = tmp_path / "tampered"
    shutil.copytree(tiny_model, copy)
    data = bytearray((copy / WEIGHTS_FILE).read_bytes())
    data[-3] ^= 0x01
    (copy / WEIGHTS_FILE).write_bytes(bytes(data))
    return copy
