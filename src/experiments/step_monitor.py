"""The training step's own gradient check: global norm (pre-clip) and a non-finite stop.

Keras 3 has no hook between computing the gradients and applying them, so
`MonitoredSequential` overrides `train_step`. With no `StepMonitor` attached it runs
Keras' own step unchanged; with one attached, every step also

- adds the global gradient norm, taken before the optimizer clips, to per-epoch sums
  (a sum of one squared norm per variable: the cheapest exact form in a TF graph);
- checks the loss and that norm for finiteness. The first non-finite step is not
  applied, nor is any later one (updates stop at once, even in the middle of a
  `steps_per_execution` call), and its batch is kept.

Once training has stopped, `locate_failure` re-runs that batch eagerly on the unchanged
weights to find where the non-finite value first appeared: in the forward pass, the
first hidden block (from the input) whose output is non-finite; in the backward pass,
the first hidden block back-propagation reached (from the output) whose gradient is
non-finite or whose squared norm overflows float32. Doing that after the fact keeps the
compiled step small: healthy steps pay for the norm and one scalar check alone, and
tracing the step costs hardly more than tracing Keras' own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras.src.trainers.data_adapters import data_adapter_utils

# Layers belonging to hidden block NN: hidden_NN (Dense), hidden_NN_bn, hidden_NN_act.
_BLOCK_LAYER = re.compile(r"^hidden_(\d+)(?:_[a-z]+)?$")


def block_of_layer(name: str) -> int:
    """The hidden block a layer belongs to (1-based), or 0 for any other layer."""
    match = _BLOCK_LAYER.match(name)
    return int(match.group(1)) if match else 0


def block_of_variable(path: str) -> int:
    """The hidden block of a variable path like `hidden_07/kernel` or `mlp/hidden_07_bn/gamma`."""
    parts = path.split("/")
    return block_of_layer(parts[-2]) if len(parts) >= 2 else 0


@dataclass
class StepFailure:
    """The first non-finite step of an epoch: where it appeared (`forward` = the loss,
    `backward` = a gradient) and the hidden block (None when no hidden block is to blame)."""

    step: int
    where: str
    block: int | None


class StepMonitor:
    """Per-epoch accumulators the training step writes, and the batch of its first
    non-finite step. Plain tf.Variables, so that they are neither model weights (saved
    with the model) nor Keras metrics (which `evaluate`, run inside `fit` for
    validation, would reset before an epoch-end callback reads them)."""

    def __init__(self, input_dtype: tf.DType = tf.float32, label_dtype: tf.DType = tf.int32):
        self.norm_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.norm_max = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.failed = tf.Variable(False, trainable=False)
        self.failed_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
        # Any shape: the failing batch, kept to find the failing layer after the fact.
        self.failed_x = tf.Variable(
            tf.zeros([0], input_dtype), shape=tf.TensorShape(None), trainable=False
        )
        self.failed_y = tf.Variable(
            tf.zeros([0], label_dtype), shape=tf.TensorShape(None), trainable=False
        )

    def reset_epoch(self) -> None:
        """Start the epoch's sums afresh; a failure stays recorded until `clear_failure`."""
        self.norm_sum.assign(0.0)
        self.norm_max.assign(0.0)
        self.steps.assign(0)

    def clear_failure(self) -> None:
        self.failed.assign(False)
        self.failed_step.assign(-1)

    def epoch_norms(self) -> dict[str, float] | None:
        """Mean and max global gradient norm over the epoch's applied steps."""
        steps = int(self.steps.numpy())
        if steps == 0:
            return None
        return {
            "mean": float(self.norm_sum.numpy()) / steps,
            "max": float(self.norm_max.numpy()),
        }

    def failure(self, model: keras.Model) -> StepFailure | None:
        """The recorded failure, located by re-running its batch on the model's weights,
        which are still those the failing step saw (it was not applied)."""
        if not bool(self.failed.numpy()):
            return None
        where, block = locate_failure(model, self.failed_x.numpy(), self.failed_y.numpy())
        return StepFailure(int(self.failed_step.numpy()), where, block)


def locate_failure(model: keras.Model, x, y) -> tuple[str, int | None]:
    """Where a non-finite value first appears in one training step on (x, y).

    Forward (the loss is non-finite): the first hidden block, from the input, whose
    output is non-finite. Backward (finite loss): back-propagation runs from the output,
    so the highest-numbered hidden block whose gradient is non-finite or whose squared
    norm overflows. Falls back to the backward rule when no hidden output is non-finite.
    Runs eagerly, once per failed run; training-mode state (BN moving statistics) is
    restored afterwards.
    """
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    state = [(v, v.numpy()) for v in model.non_trainable_variables]
    try:
        with tf.GradientTape() as tape:
            outputs = x
            forward_block = None
            for layer in model.layers:
                outputs = layer(outputs, training=True)
                block = block_of_layer(layer.name)
                finite = bool(tf.reduce_all(tf.math.is_finite(outputs)))
                if block and forward_block is None and not finite:
                    forward_block = block
            loss = model.compute_loss(x=x, y=y, y_pred=outputs, training=True)
        weights = model.trainable_weights
        gradients = tape.gradient(loss, weights)
    finally:
        for variable, value in state:
            variable.assign(value)
    backward_block = max(
        (
            block_of_variable(w.path)
            for w, g in zip(weights, gradients, strict=True)
            if g is not None and not np.isfinite(float(tf.nn.l2_loss(g)) * 2.0)
        ),
        default=0,
    )
    if not bool(tf.math.is_finite(loss)):
        return "forward", forward_block or backward_block or None
    return "backward", backward_block or None


@keras.saving.register_keras_serializable(package="gradient_lab")
class MonitoredSequential(keras.Sequential):
    """A Sequential model whose training step reports to a `StepMonitor` when one is
    attached. Registered, so a saved `.keras` file loads with Keras' safe loading once
    this module is imported (importing `experiments.models` imports it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._step_monitor: StepMonitor | None = None

    def attach_monitor(self, monitor: StepMonitor | None) -> None:
        self._step_monitor = monitor
        self.train_function = None  # rebuilt by the next fit with (or without) the monitor

    def train_step(self, data):
        monitor = self._step_monitor
        if monitor is None or not self.trainable_weights:
            return super().train_step(data)
        # Keras' own step (TensorFlowTrainer.train_step), with the norm and the check
        # between computing the gradients and applying them.
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        gradients = tape.gradient(scaled_loss, weights)
        norm = tf.sqrt(tf.add_n([tf.nn.l2_loss(g) for g in gradients]) * 2.0)
        healthy = tf.logical_and(tf.math.is_finite(loss), tf.math.is_finite(norm))
        apply = tf.logical_and(healthy, tf.logical_not(monitor.failed))

        def apply_step():
            self.optimizer.apply_gradients(zip(gradients, weights, strict=True))
            monitor.norm_sum.assign_add(tf.cast(norm, tf.float64))
            monitor.norm_max.assign(tf.maximum(monitor.norm_max, norm))
            monitor.steps.assign_add(1)

        def record_failure():
            monitor.failed_x.assign(tf.cast(x, monitor.failed_x.dtype))
            monitor.failed_y.assign(tf.cast(y, monitor.failed_y.dtype))
            monitor.failed_step.assign(monitor.steps)
            monitor.failed.assign(True)

        # A skipped step: only the first failure is recorded; later steps wait for the stop.
        tf.cond(apply, apply_step, lambda: tf.cond(monitor.failed, lambda: None, record_failure))

        # A skipped step counts neither in the epoch's loss nor in its norms.
        batch_size = tf.shape(next(t for t in tf.nest.flatten(x) if t is not None))[0]
        self._loss_tracker.update_state(
            tf.where(apply, loss, tf.zeros_like(loss)),
            sample_weight=tf.where(apply, batch_size, tf.zeros_like(batch_size)),
        )
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
