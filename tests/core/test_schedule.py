"""A time budget (``--max-minutes``) shapes the one-cycle schedule instead of cutting it (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

from core.training.schedule import epochs_within, one_cycle


def test_epochs_within_counts_the_first_epoch_and_stays_in_bounds() -> None:
    assert epochs_within(60.0, 7.0, 20) == 8
    assert epochs_within(600.0, 7.0, 20) == 20
    assert epochs_within(3.0, 7.0, 20) == 1


def test_a_refitted_schedule_continues_and_ends_at_its_floor() -> None:
    import torch

    lr, per_epoch = 0.01, 5
    param = torch.nn.Parameter(torch.zeros(1))
    optimiser = torch.optim.AdamW([param], lr=lr)
    scheduler = one_cycle(optimiser, lr, per_epoch, 20)
    for _ in range(per_epoch):
        optimiser.step()
        scheduler.step()
    at_switch = optimiser.param_groups[0]["lr"]
    assert at_switch < lr / 2  # still warming up for 20 epochs
    scheduler = one_cycle(optimiser, lr, per_epoch, 3, steps_done=scheduler.last_epoch)
    rates = []
    for _ in range(2 * per_epoch):
        optimiser.step()
        scheduler.step()
        rates.append(optimiser.param_groups[0]["lr"])
    # The shorter cycle's warm-up (a fifth of it) is over: the rate is past its peak and falls.
    assert rates[0] > at_switch and rates[0] < lr
    assert all(b <= a for a, b in zip(rates, rates[1:], strict=False))
    assert rates[-1] < lr * 1e-3  # and the cycle is finished at the end of epoch 3


def test_a_tiny_budget_gives_a_finished_schedule(pair_data: Path, tmp_path: Path) -> None:
    from core.training.fit import TrainConfig, train

    messages: list[str] = []
    config = TrainConfig(
        name="budget",
        architecture="tiny_cnn",
        input_size=48,
        epochs=400,
        patience=400,
        max_minutes=0.2,  # 12 s at the first epoch's pace (1-3 s with start-up): a few epochs, not 400
        batch_size=16,
        val_fraction=0.25,
        test_fraction=0.0,
        group_pattern=r"_(\d+)\.png$",
        seed=1,
    )
    train(config, pair_data, tmp_path / "run", log=messages.append)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 2 <= metrics["epochs_scheduled"] < 400
    assert any("the schedule is fitted to" in m for m in messages)
    # The run ends because its schedule ends (or, if later epochs were much slower, at the limit),
    # never with the learning rate still high.
    assert metrics["epochs_run"] <= metrics["epochs_scheduled"]
    if metrics["epochs_run"] == metrics["epochs_scheduled"]:
        assert metrics["final_lr"] < config.lr * 1e-3
    rows = (tmp_path / "run" / "epochs.csv").read_text().splitlines()
    assert len(rows) - 1 == metrics["epochs_run"]


def test_patience_stops_a_run_only_once_the_rate_falls() -> None:
    from core.training.schedule import may_stop_early

    # 25 epochs: never in the first 14 (the peak and the start of the fall), from epoch 15 on.
    assert [e for e in range(1, 26) if may_stop_early(e, 25)] == list(range(15, 26))
    assert may_stop_early(1, 1) and not may_stop_early(1, 2) and may_stop_early(2, 2)


def test_patience_does_not_cut_a_run_at_its_peak(pair_data: Path, tmp_path: Path) -> None:
    from core.training.fit import TrainConfig, train

    messages: list[str] = []
    config = TrainConfig(
        name="patient", architecture="tiny_cnn", input_size=32, epochs=5, patience=1, batch_size=16,
        val_fraction=0.25, test_fraction=0.0, group_pattern=r"_(\d+)\.png$", seed=1,
    )  # fmt: skip
    train(config, pair_data, tmp_path / "run", log=messages.append)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # patience 1 may stop it from epoch 3 of 5 on, never before
    assert metrics["epochs_run"] >= 3
    rows = (tmp_path / "run" / "epochs.csv").read_text().splitlines()
    assert len(rows) - 1 == metrics["epochs_run"]
