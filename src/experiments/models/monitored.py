"""The training step's own gradient check: global norm (pre-clip) and a non-finite stop.

Keras 3 has no hook between computing the gradients and applying them, so
`MonitoredStep` overrides `train_step`, for a chain of layers (`MonitoredSequential`) and
for a graph with skip connections (`MonitoredFunctional`) alike. With no `StepMonitor`
attached it runs Keras' own step unchanged; with one attached, every step also

- adds the global gradient norm, taken before the optimizer clips, to the epoch's sum
  and maximum (one squared norm per variable: the cheapest exact form in a TF graph);
- checks the loss (`check_numerics`). The update and the loss metric wait on that
  check, so a step with a non-finite loss is not applied. The loss is known before
  back-propagation starts, so this holds nothing up;
- checks the global norm; its per-variable squared norms are kept at every step, so a
  failing check leaves behind where back-propagation overflowed. The update does not
  wait on this check, so that, as in Keras' own step, the last layers' updates can run
  while back-propagation still works on the first ones; the failing step's own update
  may therefore have been applied.

A failing check aborts the compiled call, even in the middle of a `steps_per_execution`
call, so no later step runs; the model's guarded train function turns that error into
a clean stop (`stop_training`) and the monitor records the step and which check failed.

Where a non-finite loss came from is found afterwards by `locate_failure`, eagerly, on
the unchanged weights: the first hidden block, from the input, whose output is
non-finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras.src.losses import loss as loss_module
from keras.src.trainers.data_adapters import data_adapter_utils

from experiments.models.naming import block_of_layer, block_of_variable
from experiments.models.taps import Taps

# Messages of the two checks, found again in the error they raise.
NON_FINITE_LOSS = "gradient_lab: non-finite loss"
NON_FINITE_GRADIENT = "gradient_lab: non-finite gradient norm"


def first_block_back_propagation_broke(paths: list[str], squared: np.ndarray) -> int | None:
    """Back-propagation runs from the output: the highest-numbered hidden block with a
    non-finite squared gradient norm. When every one is finite (their sum overflowed),
    the block of the largest one."""
    blocks = [block_of_variable(p) for p in paths]
    bad = [b for b, s in zip(blocks, squared, strict=True) if not np.isfinite(s) and b]
    if bad:
        return max(bad)
    if not len(squared):
        return None
    return blocks[int(np.argmax(squared))] or None


@dataclass
class StepFailure:
    """The first non-finite step: its index in the epoch, where it appeared (`forward` =
    the loss, `backward` = the gradient) and, for the gradient, its hidden block."""

    step: int
    where: str
    block: int | None = None


class StepMonitor:
    """The epoch's gradient-norm sum and maximum, which the training step writes, and
    the failure its guard records. Plain tf.Variables: neither model weights (saved
    with the model) nor Keras metrics (which `evaluate`, run inside `fit` for
    validation, would reset before an epoch-end callback reads them)."""

    def __init__(self) -> None:
        # Norms / sqrt(2): sqrt(sum of l2_loss) saves a multiplication per step.
        self.half_norm_sum = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self.half_norm_max = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)  # steps checked finite
        self.failed_squared: tf.Variable | None = None  # sized by `bind`
        self.variable_paths: list[str] = []
        self.failure: StepFailure | None = None

    def bind(self, weights: list) -> None:
        """Room for one squared norm per trainable variable (the list changes when
        layers are frozen or unfrozen, and Keras then builds a new train function)."""
        self.variable_paths = [w.path for w in weights]
        self.failed_squared = tf.Variable(tf.zeros([len(weights)]), trainable=False)

    def reset_epoch(self) -> None:
        """Start the epoch's sums afresh; a failure stays recorded until `clear_failure`."""
        self.half_norm_sum.assign(0.0)
        self.half_norm_max.assign(0.0)
        self.steps.assign(0)

    def clear_failure(self) -> None:
        self.failure = None

    def epoch_norms(self) -> dict[str, float] | None:
        """Mean and max global gradient norm over the epoch's steps (up to a failure)."""
        steps = int(self.steps.numpy())
        if steps == 0:
            return None
        return {
            "mean": math.sqrt(2.0) * float(self.half_norm_sum.numpy()) / steps,
            "max": math.sqrt(2.0) * float(self.half_norm_max.numpy()),
        }

    def record_failure(self, message: str) -> bool:
        """Record the failure a check's error message names; False if it names none."""
        if NON_FINITE_LOSS in message:
            where, block = "forward", None
        elif NON_FINITE_GRADIENT in message:
            where = "backward"
            # Halves of the squared norms: enough to tell finite from not, and the largest.
            squared = self.failed_squared.numpy() if self.failed_squared is not None else []
            block = first_block_back_propagation_broke(self.variable_paths, squared)
        else:
            return False
        if self.failure is None:
            self.failure = StepFailure(int(self.steps.numpy()), where, block)
        return True


def locate_failure(model: keras.Model, x, y) -> tuple[str | None, int | None]:
    """Where a non-finite value appears in one training step on (x, y), if it does.

    Returns ("forward", block) when the loss is non-finite: the first hidden block, from
    the input, whose output is non-finite; ("backward", block) when only the gradient
    is (see `first_block_back_propagation_broke`); (None, None) when the step is
    finite. The block is None when no hidden block is to blame. Runs eagerly;
    training-mode state (BN moving statistics) is restored afterwards.
    """
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    state = [(v, v.numpy()) for v in model.non_trainable_variables]
    block_layers = [layer for layer in model.layers if block_of_layer(layer.name)]
    taps = Taps(model, outputs_of=block_layers)
    try:
        with tf.GradientTape() as tape:
            outputs, _, block_outputs = taps(x, training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=outputs, training=True)
        non_finite = [
            block_of_layer(layer.name)
            for layer, value in zip(block_layers, block_outputs, strict=True)
            if not bool(tf.reduce_all(tf.math.is_finite(value)))
        ]
        forward_block = min(non_finite, default=None)
        weights = model.trainable_weights
        gradients = tape.gradient(loss, weights)
    finally:
        for variable, value in state:
            variable.assign(value)
    if not bool(tf.math.is_finite(loss)):
        return "forward", forward_block
    pairs = [(w.path, g) for w, g in zip(weights, gradients, strict=True) if g is not None]
    squared = np.array([float(tf.nn.l2_loss(g)) * 2.0 for _, g in pairs])
    if np.isfinite(squared.sum()):
        return None, None
    return "backward", first_block_back_propagation_broke([p for p, _ in pairs], squared)


class MonitoredStep:
    """The training step of a Keras model, reporting to a `StepMonitor` when one is
    attached; mixed in before the model class (see the two below)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._step_monitor: StepMonitor | None = None

    def attach_monitor(self, monitor: StepMonitor | None) -> None:
        self._step_monitor = monitor
        self.train_function = None  # rebuilt by the next fit with (or without) the monitor

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        monitor = self._step_monitor
        if monitor is not None:
            monitor.bind(self.trainable_weights)
        super().make_train_function(force=force)
        if monitor is not None:
            self.train_function = self._guarded(self.train_function, monitor)
        return self.train_function

    def _guarded(self, train_function, monitor: StepMonitor):
        """Keras' train function, with a failed check turned into a clean stop: the
        metrics as they stood after the last applied step, and `stop_training`."""

        def guarded(iterator):
            try:
                logs = train_function(iterator)
            except tf.errors.InvalidArgumentError as error:
                if not monitor.record_failure(error.message):
                    raise
                self.stop_training = True
                return self._measured_before_failure(monitor)
            if self.jit_compile and not math.isfinite(float(monitor.half_norm_sum.numpy())):
                # XLA compiles check_numerics away: the norm sum still shows the failure,
                # at the end of the compiled call, after its later steps were applied.
                loss = float(self.get_metrics_result().get("loss", math.nan))
                monitor.record_failure(
                    NON_FINITE_GRADIENT if math.isfinite(loss) else NON_FINITE_LOSS
                )
                self.stop_training = True
            return logs

        return guarded

    def _measured_before_failure(self, monitor: StepMonitor) -> dict[str, float]:
        """The epoch's metrics up to the last step that passed its checks. When none did,
        Keras' running means are empty and would read 0: the epoch then reports the
        non-finite loss that stopped it, or nothing when only the gradient failed."""
        if int(monitor.steps.numpy()) > 0:
            return self.get_metrics_result()
        return {"loss": math.nan} if monitor.failure.where == "forward" else {}

    def train_step(self, data):
        monitor = self._step_monitor
        if monitor is None or not self.trainable_weights:
            return super().train_step(data)
        # Keras' own step (TensorFlowTrainer.train_step), with the checks and the norm.
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        gradients = tape.gradient(scaled_loss, weights)

        loss = tf.debugging.check_numerics(loss, NON_FINITE_LOSS)
        with tf.control_dependencies([loss]):
            self.optimizer.apply_gradients(zip(gradients, weights, strict=True))
            self._loss_tracker.update_state(
                loss_module.unscale_loss_for_distribution(loss),
                sample_weight=tf.shape(next(t for t in tf.nest.flatten(x) if t is not None))[0],
            )

        # Halves of each ||g||^2 (tf.nn.l2_loss), kept at every step (one small assign, far
        # cheaper than a tf.cond over them) so that a failing check leaves its own behind.
        squared = tf.stack([tf.nn.l2_loss(g) if g is not None else 0.0 for g in gradients])
        with tf.control_dependencies([monitor.failed_squared.assign(squared)]):
            half_norm = tf.debugging.check_numerics(
                tf.sqrt(tf.reduce_sum(squared)), NON_FINITE_GRADIENT
            )
        monitor.half_norm_sum.assign_add(half_norm)
        monitor.half_norm_max.assign(tf.maximum(monitor.half_norm_max, half_norm))
        with tf.control_dependencies([half_norm]):
            monitor.steps.assign_add(1)
        # Accuracy is not held back: a failing step may count in the epoch's accuracy.
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


# Registered, so a saved `.keras` file loads with Keras' safe loading once this module is
# imported (`experiments.models.blocks` imports it).
@keras.saving.register_keras_serializable(package="gradient_lab")
class MonitoredSequential(MonitoredStep, keras.Sequential):
    """A chain of layers (the plain nets) with the monitored training step."""


@keras.saving.register_keras_serializable(package="gradient_lab")
class MonitoredFunctional(MonitoredStep, keras.Model):
    """A functional graph (the residual nets) with the monitored training step; built as
    `MonitoredFunctional(inputs, outputs, name=...)`."""
