"""The study's three models: model A (the config's net on task A, `models.nets.build_model`), baseline B (the same
hidden stack from scratch under one sigmoid unit) and B on A (a copy of model A's
hidden stack under one sigmoid unit), and the freezing of B on A's reused layers. A conv
net (model=cnn) is reused the same way, with or without skips: its conv stages and
dense head are the hidden stack; `stage_N` freezes its first stages."""

from __future__ import annotations

import keras
import numpy as np

from experiments.models.activations import ActivationConfig
from experiments.models.blocks import hidden_stack
from experiments.models.conv import build_conv_model
from experiments.models.initializers import InitConfig
from experiments.models.monitored import MonitoredFunctional, MonitoredSequential
from experiments.models.naming import block_of_layer
from experiments.models.normalization import NormalizationConfig
from experiments.models.settings import ModelConfig
from experiments.transfer.options import first_unfrozen_block

OUTPUT = "output"


def binary_output() -> keras.layers.Layer:
    return keras.layers.Dense(1, activation="sigmoid", name=OUTPUT)


def build_baseline_b(
    model: ModelConfig,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
    input_shape: tuple[int, ...],
) -> keras.Model:
    """Model A's hidden stack, from scratch, under one sigmoid unit."""
    if model.is_conv:
        return build_conv_model(
            model,
            init,
            activation,
            normalization,
            input_shape,
            num_classes=1,
            output=binary_output(),
            name="baseline_b",
        )
    stack = hidden_stack(model.hidden_sizes(), init, activation, normalization)
    return MonitoredSequential(
        [
            keras.Input(shape=input_shape, name="image"),
            keras.layers.Flatten(name="flatten"),
            *stack,
            binary_output(),
        ],
        name="baseline_b",
    )


def build_b_on_a(model_a: keras.Model) -> keras.Model:
    """A copy of model A's layers below its output, under one sigmoid unit. The copy
    matters: stacking model A's own layers would train model A along with it. A graph
    (a conv net with skips) keeps its graph: the new unit reads what model A's output
    layer read."""
    clone = keras.models.clone_model(model_a)
    clone.set_weights(model_a.get_weights())
    if not isinstance(model_a, keras.Sequential):
        features = clone.get_layer(OUTPUT).input
        return MonitoredFunctional(clone.inputs, binary_output()(features), name="b_on_a")
    return MonitoredSequential(
        [
            keras.Input(shape=model_a.input_shape[1:], name="image"),
            *clone.layers[:-1],
            binary_output(),
        ],
        name="b_on_a",
    )


def set_reused_trainable(
    model: keras.Model, spec: str, stage_starts: dict[int, int] | None = None
) -> None:
    """Every layer below the output: `freeze` freezes them all; otherwise `spec` is
    transfer.trainable_from (all | none | hidden_NN: that block and the ones above |
    stage_N: a conv net's stage N, from `stage_starts`, and the ones above)."""
    reused = [layer for layer in model.layers if layer.name != OUTPUT]
    n_blocks = max(block_of_layer(layer.name) for layer in reused)
    first = None if spec == "freeze" else first_unfrozen_block(spec, n_blocks, stage_starts)
    for layer in reused:
        block = block_of_layer(layer.name)
        layer.trainable = spec == "all" or (first is not None and 0 < block and block >= first)


def count_trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def weights_untouched(model_a: keras.Model, before: list[np.ndarray]) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(before, model_a.get_weights(), strict=True))
