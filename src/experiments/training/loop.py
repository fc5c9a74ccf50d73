"""Compile, fit with per-epoch logging and a stop at the first non-finite loss, evaluate."""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from experiments.core import names
from experiments.data import Splits
from experiments.models.activations import ActivationConfig
from experiments.models.initializers import InitConfig
from experiments.models.nets import build_model
from experiments.models.normalization import NormalizationConfig
from experiments.models.settings import ModelConfig
from experiments.training.data_order import EpochBatches, steps_per_epoch
from experiments.training.optimizers import ClippingConfig, OptimizerConfig, make_optimizer
from experiments.training.schedules import RunSteps, ScheduleConfig, make_schedule
from experiments.training.settings import TrainingConfig

# Every epoch's numbers, as Keras' CSVLogger writes them, in the run's output folder.
HISTORY_FILE = "history.csv"


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow/Keras seeds at once; Keras 3 draws unseeded
    initializers from Python's `random`, which tf.random.set_seed alone leaves alone."""
    keras.utils.set_random_seed(seed)


def compile_model(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    training: TrainingConfig,
    loss: str = "sparse_categorical_crossentropy",
) -> None:
    model.compile(
        loss=loss,
        optimizer=optimizer,
        metrics=["accuracy"],
        steps_per_execution=training.steps_per_execution,
        jit_compile=training.jit_compile,
    )


def run_steps(train_size: int, training: TrainingConfig, epochs: int) -> RunSteps:
    """The steps a fit of `epochs` epochs takes, as Keras counts them."""
    return RunSteps(
        steps_per_epoch(train_size, training.batch_size, training.steps_per_epoch), epochs
    )


def scheduled_optimizer(
    optimizer: OptimizerConfig,
    clipping: ClippingConfig,
    schedule: ScheduleConfig,
    steps: RunSteps,
    learning_rate: float | None = None,
) -> tuple[keras.optimizers.Optimizer, list[keras.callbacks.Callback]]:
    """The optimizer with its clipping and its rate schedule over `steps` (from
    `learning_rate`, else the optimizer's), and the callbacks the schedule needs during
    `fit`."""
    rate = optimizer.learning_rate if learning_rate is None else learning_rate
    scheduled = make_schedule(schedule, rate, steps)
    return make_optimizer(optimizer, clipping, scheduled.learning_rate), scheduled.callbacks


def compiled_model(
    splits: Splits,
    *,
    model: ModelConfig,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
    optimizer: OptimizerConfig,
    clipping: ClippingConfig,
    schedule: ScheduleConfig,
    training: TrainingConfig,
) -> tuple[keras.Model, keras.optimizers.Optimizer, list[keras.callbacks.Callback]]:
    """The run's model from its groups, seeded first, compiled with its optimizer; also
    the callbacks its learning-rate schedule needs during `fit`."""
    seed_everything(training.seed)
    net = build_model(
        model, init, activation, normalization, splits.input_shape, splits.num_classes
    )
    steps = run_steps(len(splits.y_train), training, training.epochs)
    keras_optimizer, callbacks = scheduled_optimizer(optimizer, clipping, schedule, steps)
    compile_model(net, keras_optimizer, training)
    return net, keras_optimizer, callbacks


def optimizer_params(optimizer: keras.optimizers.Optimizer) -> dict[str, object]:
    """The optimizer's own config, as params: what Keras actually used, defaults included."""
    config = optimizer.get_config()
    return {k: v for k, v in config.items() if k != "name" and not isinstance(v, dict)}


@dataclass
class Outcome:
    """How a fit ended. `failed_epoch` is set when a non-finite value stopped it."""

    epochs_run: int = 0
    failed_epoch: int | None = None
    reason: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def exploded(self) -> bool:
        return self.failed_epoch is not None


class EpochLogger(keras.callbacks.Callback):
    """Per-epoch metrics with `step=epoch` in one batched call, and a stop at the first
    non-finite loss (checked at every compiled call, i.e. every steps_per_execution
    steps, where Keras hands back the running loss). `lr` is the learning rate of the
    epoch's first step, as the optimizer computes it (a schedule's value at that step;
    what a callback such as ReduceLROnPlateau set at the end of the previous epoch)."""

    def __init__(
        self,
        log_metrics: Callable[[dict[str, float], int], None],
        outcome: Outcome,
        step_offset: int = 0,
    ):
        super().__init__()
        self.log_metrics = log_metrics
        self.outcome = outcome
        self.step_offset = step_offset
        self._epoch = 0
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._stop(
                f"non-finite training loss ({float(loss)}) at epoch {self._epoch + self.step_offset}"
            )

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + self.step_offset
        values = {k: float(v) for k, v in (logs or {}).items() if k in names.EPOCH_METRICS}
        values["epoch_seconds"] = time.perf_counter() - self._started
        values["lr"] = self._rate
        self.log_metrics(values, step)
        for key, value in values.items():
            self.outcome.history.setdefault(key, []).append(value)
        self.outcome.epochs_run += 1
        bad = [k for k in ("loss", "val_loss") if k in values and not math.isfinite(values[k])]
        if bad and not self.outcome.exploded:
            self._stop(f"non-finite {bad[0]} ({values[bad[0]]}) at epoch {step}")

    def _stop(self, reason: str) -> None:
        if not self.outcome.exploded:
            self.outcome.failed_epoch = self._epoch + self.step_offset
            self.outcome.reason = reason
        self.model.stop_training = True


def fit(
    model: keras.Model,
    splits: Splits,
    training: TrainingConfig,
    log_metrics: Callable[[dict[str, float], int], None],
    output_dir: Path | None = None,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    step_offset: int = 0,
    epochs: int | None = None,
    initial_epoch: int = 0,
    outcome: Outcome | None = None,
) -> Outcome:
    """Epochs `initial_epoch` .. `epochs - 1` (a run continued from a checkpoint starts
    past 0, with the `outcome` of its earlier epochs). Epoch e's batches depend on the
    seed and `step_offset + e` only (training.data_order)."""
    outcome = Outcome() if outcome is None else outcome
    batches = EpochBatches(
        splits.x_train,
        splits.y_train,
        seed=training.seed,
        batch_size=training.batch_size,
        steps=steps_per_epoch(len(splits.y_train), training.batch_size, training.steps_per_epoch),
        step_offset=step_offset,
    )
    # The batches' epoch first: Keras starts the epoch's iterator after every callback's
    # on_epoch_begin.
    callbacks: list[keras.callbacks.Callback] = [
        batches,
        EpochLogger(log_metrics, outcome, step_offset),
    ]
    if output_dir is not None:
        # A local copy of every epoch's numbers beside the job's other outputs.
        callbacks.append(keras.callbacks.CSVLogger(str(output_dir / HISTORY_FILE), append=True))
    callbacks.extend(extra_callbacks or [])
    model.fit(
        batches.dataset,
        epochs=training.epochs if epochs is None else epochs,
        initial_epoch=initial_epoch,
        shuffle=False,  # the batches come shuffled (EpochBatches)
        validation_data=(splits.x_val, splits.y_val),
        validation_batch_size=training.eval_batch_size,
        callbacks=callbacks,
        verbose=training.verbose_on(sys.stdout.isatty()),
    )
    return outcome


def keep_history_before(output_dir: Path, epoch: int) -> None:
    """history.csv without its rows of `epoch` and later: a run continued from epoch
    `epoch` writes them again (the process it continues may have written the row of the
    epoch it was in when it stopped)."""
    path = output_dir / HISTORY_FILE
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or "epoch" not in rows[0]:
        return
    column = rows[0].index("epoch")
    kept = [rows[0]] + [r for r in rows[1:] if len(r) > column and int(r[column]) < epoch]
    if len(kept) < len(rows):
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerows(kept)


def evaluate(
    model: keras.Model, x: np.ndarray, y: np.ndarray, training: TrainingConfig
) -> dict[str, float]:
    results = model.evaluate(x, y, batch_size=training.eval_batch_size, verbose=0, return_dict=True)
    return {f"test_{k}": float(v) for k, v in results.items()}
