"""Learning-rate schedules (the `schedule` group): its schema and one builder per option.

A builder turns `optimizer.learning_rate` (the base rate; the peak for one_cycle and
warmup_cosine) into what the optimizer takes, a number or a Keras LearningRateSchedule
evaluated at every step, plus the callbacks that change the rate between epochs
(`performance`). Durations are given in epochs (`decay_epochs`, `boundaries`,
`patience`) or as fractions of the run (`annealing_fraction`, `warmup_fraction`) and
become steps here, from the run's steps per epoch. Each fit with a fresh optimizer (a
phase of the transfer study) starts its schedule again, over its own epochs.

The options follow the chapter's section on learning-rate scheduling:

    constant        the rate itself, unchanged (the default: the optimizer gets a number)
    exponential     lr * decay_rate ** (epoch / decay_epochs), per step
    power           lr / (1 + epoch / decay_epochs), per step (power c = 1, as Keras has it)
    piecewise       lr * factors[i] from epoch boundaries[i-1] on
    performance     lr * factor after `patience` epochs without a better val_loss
    one_cycle       Smith 2018: up from lr / div_factor to lr over the first half of the
                    cycle, back down over the second, then down to lr / div_factor /
                    final_div_factor over the last annealing_fraction of the steps
    warmup_cosine   linear warmup from 0 to lr over warmup_fraction of the steps, then a
                    cosine decay to alpha * lr at the end of the run
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from experiments.core.options import Options


@dataclass
class Schedule:
    """What an optimizer takes as its rate, and the callbacks that change it."""

    learning_rate: Any  # float | keras.optimizers.schedules.LearningRateSchedule
    callbacks: list = field(default_factory=list)


@dataclass(frozen=True)
class RunSteps:
    per_epoch: int
    epochs: int

    @property
    def total(self) -> int:
        return self.per_epoch * self.epochs


SCHEDULES = Options("schedule")


@SCHEDULES.register("constant")
def constant(cfg: ScheduleConfig, rate: float, steps: RunSteps) -> Schedule:
    return Schedule(rate)


@SCHEDULES.register("exponential", uses={"decay_rate", "decay_epochs"})
def exponential(cfg: ScheduleConfig, rate: float, steps: RunSteps) -> Schedule:
    import keras

    return Schedule(
        keras.optimizers.schedules.ExponentialDecay(
            rate, decay_steps=cfg.decay_epochs * steps.per_epoch, decay_rate=cfg.decay_rate
        )
    )


@SCHEDULES.register("power", uses={"decay_epochs"})
def power(cfg: ScheduleConfig, rate: float, steps: RunSteps) -> Schedule:
    import keras

    return Schedule(
        keras.optimizers.schedules.InverseTimeDecay(
            rate, decay_steps=cfg.decay_epochs * steps.per_epoch, decay_rate=1.0
        )
    )


@SCHEDULES.register("piecewise", uses={"boundaries", "factors"})
def piecewise(cfg: ScheduleConfig, rate: float, steps: RunSteps) -> Schedule:
    import keras

    # Keras keeps values[i] up to and including step boundaries[i]: the last step before
    # the epoch, so the new rate starts with the epoch's first step.
    return Schedule(
        keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[b * steps.per_epoch - 1 for b in cfg.boundaries],
            values=[rate * f for f in cfg.factors],
        )
    )


@SCHEDULES.register("performance", uses={"factor", "patience"})
def performance(cfg: ScheduleConfig, rate: float, steps: RunSteps) -> Schedule:
    import keras

    return Schedule(
        rate,
        [
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=cfg.factor, patience=cfg.patience
            )
        ],
    )


@SCHEDULES.register("one_cycle", uses={"div_factor", "final_div_factor", "annealing_fraction"})
def one_cycle(cfg: ScheduleConfig, rate: float, steps: RunSteps) -> Schedule:
    # Keras (the 1cycle callback subclasses it): never on a config-only path.
    from experiments.training.one_cycle import OneCycle

    start = rate / cfg.div_factor
    return Schedule(
        OneCycle(
            start_rate=start,
            max_rate=rate,
            final_rate=start / cfg.final_div_factor,
            total_steps=steps.total,
            annealing_steps=round(cfg.annealing_fraction * steps.total),
        )
    )


@SCHEDULES.register("warmup_cosine", uses={"warmup_fraction", "alpha"})
def warmup_cosine(cfg: ScheduleConfig, rate: float, steps: RunSteps) -> Schedule:
    import keras

    warmup = round(cfg.warmup_fraction * steps.total)
    # Keras' CosineDecay has the linear warmup built in (warmup_target, warmup_steps).
    return Schedule(
        keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0,
            decay_steps=max(steps.total - warmup, 1),
            alpha=cfg.alpha,
            warmup_target=rate,
            warmup_steps=warmup,
        )
    )


ScheduleName = SCHEDULES.enum("ScheduleName", __name__)


@dataclass
class ScheduleConfig:
    name: ScheduleName = ScheduleName.constant
    decay_rate: float | None = None
    decay_epochs: float | None = None
    boundaries: list[int] | None = None
    factors: list[float] | None = None
    factor: float | None = None
    patience: int | None = None
    div_factor: float | None = None
    final_div_factor: float | None = None
    annealing_fraction: float | None = None
    warmup_fraction: float | None = None
    alpha: float | None = None


def make_schedule(cfg: ScheduleConfig, learning_rate: float, steps: RunSteps) -> Schedule:
    return SCHEDULES.build(cfg.name, cfg, learning_rate, steps)


def rate_schedule(optimizer):
    """The optimizer's LearningRateSchedule, or None when its rate is a plain value (the
    optimizer's public `learning_rate` is only the value at the current step)."""
    import keras

    config = optimizer.get_config()["learning_rate"]
    return keras.optimizers.schedules.deserialize(config) if isinstance(config, dict) else None


def rates_per_step(schedule, steps: int):
    """The schedule's rate at steps 0..steps-1, as a NumPy array, in one compiled call
    (a Python loop costs a millisecond a step; Keras' schedules take a scalar step,
    and some of them branch on it, so they cannot take all the steps at once)."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def all_rates(n):
        return tf.map_fn(
            lambda step: tf.cast(schedule(step), tf.float32),
            tf.range(n, dtype=tf.int64),
            fn_output_signature=tf.float32,
        )

    return all_rates(tf.constant(steps, tf.int64)).numpy()


def write_rate_plot(optimizer, path):
    """The rate of each step the optimizer took, as a figure at `path`, when its rate is
    a schedule (it may change within an epoch); None for a plain rate, whose value per
    epoch the `lr` metric already gives. A transfer study's B on A shows its last phase."""
    # matplotlib, for a finished run only; this module is on the config-only path.
    from experiments.figures import rate_per_step

    schedule = rate_schedule(optimizer)
    steps = int(optimizer.iterations)
    if schedule is None or steps == 0:
        return None
    return rate_per_step(rates_per_step(schedule, steps), path)
