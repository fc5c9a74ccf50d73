"""Learning-rate schedules: the rate each option gives at each step, what the optimizer
gets, the `lr` metric of every epoch and the per-step figure."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers.compose import typed

from experiments.training import loop as training
from experiments.training.optimizers import make_optimizer
from experiments.training.schedules import (
    RunSteps,
    make_schedule,
    rate_schedule,
    rates_per_step,
    write_rate_plot,
)

# A run of 30 epochs of 10 steps: rate at the first step of epoch e = rates[10 * e].
STEPS = RunSteps(per_epoch=10, epochs=30)
LR = 0.02


def rates(*overrides: str, steps: RunSteps = STEPS) -> np.ndarray:
    cfg = typed(*overrides)
    return rates_per_step(make_schedule(cfg.schedule, LR, steps).learning_rate, steps.total)


def optimizer_with_schedule(cfg):
    return training.scheduled_optimizer(cfg.optimizer, cfg.clipping, cfg.schedule, STEPS)


def test_constant_gives_the_optimizer_the_very_rate_it_had_before_schedules():
    cfg = typed("optimizer=sgd", "optimizer.momentum=0.9")
    optimizer, callbacks = optimizer_with_schedule(cfg)
    assert callbacks == []
    before = make_optimizer(cfg.optimizer, cfg.clipping).get_config()
    assert optimizer.get_config() | {"name": None} == before | {"name": None}  # sgd, sgd_1
    assert rate_schedule(optimizer) is None
    assert optimizer.get_config()["learning_rate"] == pytest.approx(cfg.optimizer.learning_rate)


def test_exponential_and_power_follow_the_chapters_formulas_per_step():
    exponential = rates(
        "schedule=exponential", "schedule.decay_rate=0.1", "schedule.decay_epochs=20"
    )
    power = rates("schedule=power", "schedule.decay_epochs=10")
    step = np.arange(STEPS.total)
    epoch = step / STEPS.per_epoch
    np.testing.assert_allclose(exponential, LR * 0.1 ** (epoch / 20), rtol=1e-5)
    np.testing.assert_allclose(power, LR / (1 + epoch / 10), rtol=1e-5)
    # Within an epoch too, not only at its start.
    assert exponential[11] < exponential[10] and power[11] < power[10]


def test_piecewise_changes_the_rate_at_the_first_step_of_each_boundary_epoch():
    values = rates(
        "schedule=piecewise", "schedule.boundaries=[5,15]", "schedule.factors=[1,0.5,0.1]"
    )
    assert values[:50] == pytest.approx([LR] * 50)
    assert values[50:150] == pytest.approx([LR * 0.5] * 100)
    assert values[150:] == pytest.approx([LR * 0.1] * 150)


def test_warmup_cosine_climbs_linearly_to_the_peak_then_decays_to_alpha():
    values = rates("schedule=warmup_cosine", "schedule.warmup_fraction=0.2", "schedule.alpha=0.1")
    warmup = int(0.2 * STEPS.total)
    assert values[0] == 0.0 and values[warmup] == pytest.approx(LR)
    np.testing.assert_allclose(np.diff(values[: warmup + 1]), LR / warmup, rtol=1e-4)
    assert np.all(np.diff(values[warmup:]) <= 1e-9)
    # Half-way through the decay the cosine is at its middle: (1 + alpha) / 2 of the peak.
    middle = warmup + (STEPS.total - warmup) // 2
    assert values[middle] == pytest.approx(LR * 0.55, rel=1e-3)
    assert values[-1] == pytest.approx(LR * 0.1, rel=1e-2)


def test_performance_multiplies_the_rate_by_factor_after_patience_flat_epochs():
    cfg = typed("schedule=performance", "schedule.factor=0.5", "schedule.patience=2")
    optimizer, (callback,) = optimizer_with_schedule(cfg)
    assert rate_schedule(optimizer) is None  # a plain rate, changed between epochs
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    callback.set_model(model)
    callback.on_train_begin()
    seen = []
    for epoch, val_loss in enumerate([1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]):
        callback.on_epoch_end(epoch, {"val_loss": val_loss})
        seen.append(float(optimizer.learning_rate))
    base = cfg.optimizer.learning_rate
    # Reduced when the 2nd epoch without progress ends; the count starts again after each.
    assert seen == pytest.approx([base] * 3 + [base / 2] * 2 + [base / 4] * 2)


def test_only_a_rate_that_changes_within_epochs_gets_a_figure(tmp_path):
    scheduled, _ = optimizer_with_schedule(typed("schedule=warmup_cosine"))
    plain, _ = optimizer_with_schedule(typed("schedule=performance"))
    for optimizer in (scheduled, plain):
        optimizer.iterations.assign(25)  # as after 25 steps
    path = write_rate_plot(scheduled, tmp_path / "learning_rate.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert write_rate_plot(plain, tmp_path / "none.png") is None  # its `lr` per epoch says it all
