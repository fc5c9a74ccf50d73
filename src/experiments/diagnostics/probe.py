"""Per-layer gradient and activation statistics on a fixed probe batch, every few epochs.

The probe is one compiled function: a forward pass with `training=False` (Batch
Normalization uses, and leaves alone, its moving statistics), the loss, and the
gradients with respect to each hidden block's kernel W_l and pre-activation s_l (the
input of its activation layer). A block's linear layer is a Dense or a Conv2D one (found
alike by its name, `models.naming`); a conv layer's statistics run over every position
and channel of the probe batch. It returns, per hidden block l (numbered from the input):

    grad/kernel_norm   ||dL/dW_l||               (no clipping: norms are pre-clip)
    grad/signal_std    std of dL/ds_l            (the back-propagated signal)
    act/mean, act/std  of the activation layer's output a_l
    act/dead_frac      ReLU-like activations: units with s_l <= 0 on every probe image
                       (for ReLU, exactly the units that output 0 on the whole batch);
                       in a conv layer a unit is a channel, dead when s_l <= 0 at every
                       position of every probe image
    act/saturated_frac sigmoid/tanh: share of (image, unit) values with
                       |a - 0.5| > 0.49 (sigmoid) or |a| > 0.98 (tanh)

`grad/depth_ratio` is the signal std of the first hidden block over that of the last.
The training step adds the epoch mean and max of the global gradient norm
(`models.monitored`). `record` keeps every number; `callback` runs the probe during
training; `run` puts the pieces together for one run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from experiments.diagnostics.record import GRAD_STATS
from experiments.models.activations import RELU_LIKE, SATURATING
from experiments.models.naming import ACTIVATION, parse_layer_name
from experiments.models.taps import Taps

log = logging.getLogger(__name__)


def applicable_stats(activation: str) -> tuple[str, ...]:
    """The statistics that mean something for this activation."""
    if activation in SATURATING:
        return GRAD_STATS + ("act/mean", "act/std", "act/saturated_frac")
    if activation in RELU_LIKE:
        return GRAD_STATS + ("act/mean", "act/std", "act/dead_frac")
    return GRAD_STATS + ("act/mean", "act/std")


@dataclass
class HiddenBlock:
    dense: keras.layers.Layer
    activation: keras.layers.Layer


def hidden_blocks(model: keras.Model) -> list[HiddenBlock]:
    """The model's hidden blocks in order: `hidden_NN` (Dense or Conv2D) and `hidden_NN_act`."""
    dense: dict[int, keras.layers.Layer] = {}
    act: dict[int, keras.layers.Layer] = {}
    for layer in model.layers:
        parsed = parse_layer_name(layer.name)
        if parsed is None:
            continue
        block, role = parsed
        if role == ACTIVATION:
            act[block] = layer
        elif role is None:
            dense[block] = layer
    blocks = [HiddenBlock(dense[i], act[i]) for i in sorted(dense) if i in act]
    if not blocks:
        raise ValueError(f"model {model.name!r} has no hidden_NN/hidden_NN_act layers to probe")
    return blocks


def probe_batch(
    x_val: np.ndarray, y_val: np.ndarray, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """`size` held-out images, chosen by the seed alone: every run of a sweep with the same
    seed and data probes the same images. A validation split smaller than `size` is used
    whole."""
    if size >= len(x_val):
        if size > len(x_val):
            log.info(
                "diagnostics.probe_size=%d > %d validation images: probing all of them",
                size,
                len(x_val),
            )
        return x_val, y_val
    chosen = np.sort(np.random.default_rng(seed).choice(len(x_val), size=size, replace=False))
    return x_val[chosen], y_val[chosen]


class Probe:
    """The compiled statistics of one model on one fixed batch."""

    def __init__(
        self,
        model: keras.Model,
        x: np.ndarray,
        y: np.ndarray,
        activation: str,
        compiled: bool = True,
    ):
        self.model = model
        self.blocks = hidden_blocks(model)
        self.activation = activation
        self.stats = applicable_stats(activation)
        # Each block's pre-activation s_l (its activation layer's input) and output a_l.
        activations = [b.activation for b in self.blocks]
        self._taps = Taps(model, inputs_of=activations, outputs_of=activations)
        self.x = tf.constant(x)
        self.y = tf.constant(y)
        # Python loops over layers only: nothing for autograph to convert. A probe run
        # once (a measurement at initialization) is quicker eagerly than traced.
        self._run = tf.function(self._compute, autograph=False) if compiled else self._compute

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    def __call__(self) -> dict[str, np.ndarray]:
        """One value per hidden block for each applicable statistic."""
        return {k: v.numpy().astype(np.float64) for k, v in self._run().items()}

    def _compute(self) -> dict[str, tf.Tensor]:
        kernels = [b.dense.kernel.value for b in self.blocks]  # the tf.Variables
        with tf.GradientTape() as tape:
            # Watched explicitly: frozen (non-trainable) layers are not watched by default.
            tape.watch(kernels)
            outputs, pre_acts, acts = self._taps(self.x, training=False, watch=tape.watch)
            loss = self.model.compute_loss(x=self.x, y=self.y, y_pred=outputs, training=False)
        d_kernel, d_signal = tape.gradient(loss, (kernels, pre_acts))
        values = {
            "grad/kernel_norm": _per_tensor(_norm, d_kernel),
            "grad/signal_std": _per_tensor(_std, d_signal),
            "act/mean": _per_tensor(_mean, acts),
            "act/std": _per_tensor(_std, acts),
        }
        if "act/dead_frac" in self.stats:
            values["act/dead_frac"] = _per_tensor(_dead_fraction, pre_acts)
        if "act/saturated_frac" in self.stats:
            centre, half_width = SATURATING[self.activation]
            values["act/saturated_frac"] = _per_tensor(
                lambda a: _mean(tf.cast(tf.abs(a - centre) > half_width, tf.float32)), acts
            )
        return values


def _per_tensor(statistic, tensors: list[tf.Tensor]) -> tf.Tensor:
    """statistic(t) for each tensor, as one vector. Tensors of one shape are stacked and
    reduced together: a 100-layer net then costs a few ops per statistic instead of a
    few hundred, which keeps the probe quick to compile (it is traced once per run)."""
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(i)
    parts, order = [], []
    for indices in groups.values():
        parts.append(statistic(tf.stack([tensors[i] for i in indices])))
        order.extend(indices)
    inverse = [0] * len(order)
    for position, i in enumerate(order):
        inverse[i] = position
    return tf.gather(tf.concat(parts, axis=0), inverse)


# Statistics of a stack [n, ...] of same-shaped tensors, one value per tensor.
def _inner_axes(t: tf.Tensor) -> list[int]:
    return list(range(1, t.shape.rank))


def _mean(t: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(t, axis=_inner_axes(t))


def _std(t: tf.Tensor) -> tf.Tensor:
    return tf.math.reduce_std(t, axis=_inner_axes(t))


def _norm(t: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=_inner_axes(t)))


def _dead_fraction(pre_activation: tf.Tensor) -> tf.Tensor:
    """[n, batch, units] or [n, batch, H, W, channels]: the share of units (a conv
    layer's channels) with s <= 0 on every image of the batch (and every position)."""
    dead_units = tf.reduce_all(
        pre_activation <= 0.0, axis=list(range(1, pre_activation.shape.rank - 1))
    )
    return tf.reduce_mean(tf.cast(dead_units, tf.float32), axis=_inner_axes(dead_units))
