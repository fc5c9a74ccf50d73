"""Per-layer gradient and activation statistics on a fixed probe batch, every few epochs.

The probe is one compiled function: a forward pass with `training=False` (Batch
Normalization uses, and leaves alone, its moving statistics), the loss, and the
gradients with respect to each hidden block's kernel W_l and pre-activation s_l (the
input of its activation layer). It returns, per hidden block l (numbered from the input):

    grad/kernel_norm   ||dL/dW_l||               (no clipping: norms are pre-clip)
    grad/signal_std    std of dL/ds_l            (the back-propagated signal)
    act/mean, act/std  of the activation layer's output a_l
    act/dead_frac      ReLU-like activations: units with s_l <= 0 on every probe image
                       (for ReLU, exactly the units that output 0 on the whole batch)
    act/saturated_frac sigmoid/tanh: share of (image, unit) values with
                       |a - 0.5| > 0.49 (sigmoid) or |a| > 0.98 (tanh)

`grad/depth_ratio` is the signal std of the first hidden block over that of the last.
The training step adds the epoch mean and max of the global gradient norm
(`step_monitor`). Metrics go to MLflow with step = epochs completed (0 = before any
update); `diagnostics/diagnostics.json` holds every number, for reports.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from experiments.config import DiagnosticsConfig
from experiments.step_monitor import (
    MonitoredSequential,
    StepMonitor,
    block_of_layer,
    locate_failure,
)
from experiments.training import Outcome

log = logging.getLogger(__name__)

GRAD_STATS = ("grad/kernel_norm", "grad/signal_std")
ACT_STATS = ("act/mean", "act/std", "act/dead_frac", "act/saturated_frac")
STATS = GRAD_STATS + ACT_STATS
SATURATING = {"sigmoid": (0.5, 0.49), "tanh": (0.0, 0.98)}  # centre, half-width
RELU_LIKE = {"relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "swish"}


def applicable_stats(activation: str) -> tuple[str, ...]:
    """The statistics that mean something for this activation."""
    if activation in SATURATING:
        return GRAD_STATS + ("act/mean", "act/std", "act/saturated_frac")
    if activation in RELU_LIKE:
        return GRAD_STATS + ("act/mean", "act/std", "act/dead_frac")
    return GRAD_STATS + ("act/mean", "act/std")


def layer_label(block: int, num_blocks: int) -> str:
    """`layer_07`; three digits once a net has 100 or more hidden blocks, so names sort."""
    return f"layer_{block:0{3 if num_blocks >= 100 else 2}d}"


@dataclass
class HiddenBlock:
    index: int
    dense: keras.layers.Layer
    activation: keras.layers.Layer


def hidden_blocks(model: keras.Model) -> list[HiddenBlock]:
    """The model's hidden blocks in order: `hidden_NN` (Dense) and `hidden_NN_act`."""
    dense: dict[int, keras.layers.Layer] = {}
    act: dict[int, keras.layers.Layer] = {}
    for layer in model.layers:
        block = block_of_layer(layer.name)
        if block and layer.name.endswith("_act"):
            act[block] = layer
        elif block and not layer.name.endswith("_bn"):
            dense[block] = layer
    blocks = [HiddenBlock(i, dense[i], act[i]) for i in sorted(dense) if i in act]
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

    def __init__(self, model: keras.Model, x: np.ndarray, y: np.ndarray, activation: str):
        self.model = model
        self.blocks = hidden_blocks(model)
        self.activation = activation
        self.stats = applicable_stats(activation)
        self.x = tf.constant(x)
        self.y = tf.constant(y)
        # Python loops over layers only: nothing for autograph to convert.
        self._compiled = tf.function(self._compute, autograph=False)

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    def __call__(self) -> dict[str, np.ndarray]:
        """One value per hidden block for each applicable statistic."""
        return {k: v.numpy().astype(np.float64) for k, v in self._compiled().items()}

    def _compute(self) -> dict[str, tf.Tensor]:
        act_layers = {id(b.activation): b.index for b in self.blocks}
        pre: dict[int, tf.Tensor] = {}
        post: dict[int, tf.Tensor] = {}
        kernels = [b.dense.kernel.value for b in self.blocks]  # the tf.Variables
        with tf.GradientTape() as tape:
            # Watched explicitly: frozen (non-trainable) layers are not watched by default.
            tape.watch(kernels)
            outputs = self.x
            for layer in self.model.layers:
                block = act_layers.get(id(layer))
                if block is not None:
                    tape.watch(outputs)
                    pre[block] = outputs
                outputs = layer(outputs, training=False)
                if block is not None:
                    post[block] = outputs
            loss = self.model.compute_loss(x=self.x, y=self.y, y_pred=outputs, training=False)
        order = [b.index for b in self.blocks]
        d_kernel, d_signal = tape.gradient(loss, (kernels, [pre[i] for i in order]))
        pre_acts = [pre[i] for i in order]
        acts = [post[i] for i in order]
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
    """[n, batch, units]: the share of units with s <= 0 on every image of the batch."""
    dead_units = tf.reduce_all(pre_activation <= 0.0, axis=1)
    return tf.reduce_mean(tf.cast(dead_units, tf.float32), axis=_inner_axes(dead_units))


def _finite_or_none(values) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


@dataclass
class DiagnosticsRecord:
    """Everything the probe and the training step measured in one run."""

    layer_names: list[str]
    activation: str
    probe_size: int
    stat_names: tuple[str, ...]
    epochs: list[int] = field(default_factory=list)
    stats: dict[str, list[list[float]]] = field(default_factory=dict)
    depth_ratio: list[float] = field(default_factory=list)
    global_norm_mean: list[float] = field(default_factory=list)
    global_norm_max: list[float] = field(default_factory=list)
    global_norm_epochs: list[int] = field(default_factory=list)
    failure: dict | None = None

    @property
    def num_layers(self) -> int:
        return len(self.layer_names)

    def add_probe(self, step: int, values: dict[str, np.ndarray]) -> dict[str, float]:
        """Keep one probe's values; return them as MLflow metrics."""
        self.epochs.append(step)
        metrics: dict[str, float] = {}
        for name, per_layer in values.items():
            self.stats.setdefault(name, []).append([float(v) for v in per_layer])
            for block, value in enumerate(per_layer, start=1):
                metrics[f"{name}/{layer_label(block, self.num_layers)}"] = float(value)
        signal = values["grad/signal_std"]
        ratio = float(signal[0] / signal[-1]) if signal[-1] != 0 else math.inf
        self.depth_ratio.append(ratio)
        metrics["grad/depth_ratio"] = ratio
        return metrics

    def add_epoch_norms(self, epoch: int, norms: dict[str, float]) -> dict[str, float]:
        self.global_norm_epochs.append(epoch)
        self.global_norm_mean.append(norms["mean"])
        self.global_norm_max.append(norms["max"])
        return {"grad/global_norm_mean": norms["mean"], "grad/global_norm_max": norms["max"]}

    def to_json(self) -> dict:
        return {
            "layers": list(range(1, self.num_layers + 1)),
            "layer_names": self.layer_names,
            "activation": self.activation,
            "probe_size": self.probe_size,
            "norms": "pre-clip",
            "epochs": self.epochs,
            "stats": {
                name: (
                    [_finite_or_none(row) for row in self.stats[name]]
                    if name in self.stat_names
                    else None
                )
                for name in STATS
            },
            "depth_ratio": _finite_or_none(self.depth_ratio),
            "global_norm": {
                "epochs": self.global_norm_epochs,
                "mean": _finite_or_none(self.global_norm_mean),
                "max": _finite_or_none(self.global_norm_max),
            },
            "failure": self.failure,
        }


class DiagnosticsCallback(keras.callbacks.Callback):
    """Probes at the start (step 0 = before any update), after every n-th epoch and after
    the last one; logs the training step's norms each epoch; turns the training step's
    non-finite stop into a failure record naming the epoch and, when known, the layer."""

    def __init__(
        self,
        probe: Probe,
        record: DiagnosticsRecord,
        log_metrics: Callable[[dict[str, float], int], None],
        every_n_epochs: int,
        monitor: StepMonitor | None,
        step_offset: int = 0,
    ):
        super().__init__()
        self.probe = probe
        self.record = record
        self.log_metrics = log_metrics
        self.every_n_epochs = every_n_epochs
        self.monitor = monitor
        self.step_offset = step_offset
        self._epochs_done = 0
        self.probe_seconds: list[float] = []  # wall time of each probe (the first compiles)

    def run_probe(self, step: int) -> None:
        if step in self.record.epochs:
            return
        started = time.perf_counter()
        values = self.probe()
        self.probe_seconds.append(time.perf_counter() - started)
        self.log_metrics(self.record.add_probe(step, values), step)

    def on_train_begin(self, logs=None):
        if self.monitor is not None:
            self.monitor.clear_failure()
        self.run_probe(self.step_offset)

    def on_epoch_begin(self, epoch, logs=None):
        if self.monitor is not None:
            self.monitor.reset_epoch()

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + self.step_offset
        self._epochs_done = epoch + 1
        if self.monitor is not None:
            norms = self.monitor.epoch_norms()
            if norms is not None:
                self.log_metrics(self.record.add_epoch_norms(step, norms), step)
            if self.monitor.failure is not None and self.record.failure is None:
                self.record.failure = self._failure(step)
        if (epoch + 1) % self.every_n_epochs == 0:
            self.run_probe(step + 1)

    def _failure(self, epoch: int) -> dict:
        """The step's failure. A non-finite gradient names its layer itself; a non-finite
        loss is located by re-running a step on the probe batch with the weights it left
        unchanged (the failing batch is gone; a blow-up of the weights shows on any)."""
        failure = self.monitor.failure
        layer = failure.block
        if failure.where == "forward":
            where, block = locate_failure(self.model, self.probe.x, self.probe.y)
            layer = block if where == "forward" else None
        what = "loss (forward pass)" if failure.where == "forward" else "gradient norm"
        place = f"; first in hidden block {layer}" if layer else "; layer not found"
        return {
            "epoch": epoch,
            "step": failure.step,
            "where": failure.where,
            "layer": layer,
            "reason": f"non-finite {what} at epoch {epoch}, step {failure.step}{place}",
        }

    def on_train_end(self, logs=None):
        # The last state is always probed, whatever every_n_epochs says.
        if self._epochs_done:
            self.run_probe(self._epochs_done + self.step_offset)


@dataclass
class Diagnostics:
    """What a run needs: the callbacks for `fit`, then the failure and the artifacts."""

    record: DiagnosticsRecord
    callback: DiagnosticsCallback
    make_plots: bool = True

    @property
    def callbacks(self) -> list[keras.callbacks.Callback]:
        return [self.callback]

    def apply_failure(self, outcome: Outcome) -> None:
        """The training step's failure is the earliest and most precise one: it wins."""
        failure = self.record.failure
        if failure is not None:
            outcome.failed_epoch = failure["epoch"]
            outcome.reason = failure["reason"]

    def failure_tags(self) -> dict[str, object]:
        failure = self.record.failure
        if failure is None:
            return {}
        tags: dict[str, object] = {"failed_step": failure["step"], "failed_in": failure["where"]}
        if failure["layer"]:
            tags["failed_layer"] = failure["layer"]
            tags["failed_layer_name"] = self.record.layer_names[failure["layer"] - 1]
        return tags

    def write_artifacts(self, output_dir: Path) -> list[tuple[Path, str]]:
        folder = output_dir / "diagnostics"
        folder.mkdir(parents=True, exist_ok=True)
        json_path = folder / "diagnostics.json"
        json_path.write_text(json.dumps(self.record.to_json(), indent=1, allow_nan=False))
        written = [(json_path, "diagnostics")]
        if self.make_plots and self.record.epochs:
            from experiments.diagnostics_plots import diagnostics_plots

            written += [(path, "plots") for path in diagnostics_plots(self.record, folder)]
        return written


def setup(
    model: keras.Model,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: DiagnosticsConfig,
    activation: str,
    seed: int,
    log_metrics: Callable[[dict[str, float], int], None],
    step_offset: int = 0,
) -> Diagnostics:
    """Probe batch, compiled probe and callback for one model; attaches the training
    step's monitor when the model has the monitored step."""
    x, y = probe_batch(x_val, y_val, cfg.probe_size, seed)
    probe = Probe(model, x, y, activation)
    monitor = None
    if cfg.step_norm and isinstance(model, MonitoredSequential):
        monitor = StepMonitor()
        model.attach_monitor(monitor)
    elif cfg.step_norm:
        log.warning(
            "%s has no monitored training step: no global gradient norm, no step-level "
            "finite check",
            type(model).__name__,
        )
    record = DiagnosticsRecord(
        layer_names=[b.dense.name for b in probe.blocks],
        activation=activation,
        probe_size=probe.size,
        stat_names=probe.stats,
    )
    callback = DiagnosticsCallback(
        probe, record, log_metrics, cfg.every_n_epochs, monitor, step_offset
    )
    return Diagnostics(record, callback, cfg.plots)
