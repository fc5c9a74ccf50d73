"""The study's three models: model A (the config's net on task A, `models.nets.build_model`), baseline B (the same
hidden stack from scratch under one sigmoid unit) and B on A (a copy of model A's
hidden stack under one sigmoid unit), and the freezing of B on A's reused layers."""

from __future__ import annotations

import keras
import numpy as np

from experiments.models.activations import ActivationConfig
from experiments.models.blocks import hidden_stack
from experiments.models.initializers import InitConfig
from experiments.models.monitored import MonitoredSequential
from experiments.models.naming import block_of_layer
from experiments.models.normalization import NormalizationConfig
from experiments.models.settings import ModelConfig
from experiments.transfer.options import first_unfrozen_block


def binary_output() -> keras.layers.Layer:
    return keras.layers.Dense(1, activation="sigmoid", name="output")


def build_baseline_b(
    model: ModelConfig,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
    input_shape: tuple[int, ...],
) -> keras.Model:
    """Model A's hidden stack, from scratch, under one sigmoid unit."""
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
    matters: stacking model A's own layers would train model A along with it."""
    clone = keras.models.clone_model(model_a)
    clone.set_weights(model_a.get_weights())
    return MonitoredSequential(
        [
            keras.Input(shape=model_a.input_shape[1:], name="image"),
            *clone.layers[:-1],
            binary_output(),
        ],
        name="b_on_a",
    )


def set_reused_trainable(model: keras.Model, spec: str) -> None:
    """Every layer below the output: `freeze` freezes them all; otherwise `spec` is
    transfer.trainable_from (all | none | hidden_NN: that block and the ones above)."""
    reused = model.layers[:-1]
    n_blocks = max(block_of_layer(layer.name) for layer in reused)
    first = None if spec == "freeze" else first_unfrozen_block(spec, n_blocks)
    for layer in reused:
        block = block_of_layer(layer.name)
        layer.trainable = spec == "all" or (first is not None and 0 < block and block >= first)


def count_trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def weights_untouched(model_a: keras.Model, before: list[np.ndarray]) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(before, model_a.get_weights(), strict=True))
