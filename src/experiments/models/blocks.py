"""Dense networks from config: init x activation x normalization placement.

Every hidden block is a linear Dense layer, then its activation as a layer of its own,
with the normalization layer after the activation or between the two (see `naming`).
Keeping the activation out of the Dense layer computes exactly what
`Dense(activation=...)` computes, and it exposes each block's pre-activation, which the
gradient diagnostics read. LeakyReLU and PReLU are layers in the notebook too.
"""

from __future__ import annotations

import keras

from experiments.config.schema import ModelConfig
from experiments.models.activations import ActivationConfig, make_activation
from experiments.models.initializers import InitConfig, make_initializer
from experiments.models.monitored import MonitoredSequential
from experiments.models.naming import ACTIVATION, BATCHNORM, block_name
from experiments.models.normalization import NormalizationConfig, Position, make_normalization


def hidden_stack(
    sizes: list[int],
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
) -> list[keras.layers.Layer]:
    """The layers after Flatten and before the output layer."""
    before = normalization.position is Position.before
    layers: list[keras.layers.Layer] = []
    if normalization.input_bn:
        layers.append(make_normalization(normalization, "input_bn"))
    for index, width in enumerate(sizes, start=1):
        norm = make_normalization(normalization, block_name(index, BATCHNORM))
        layers.append(
            keras.layers.Dense(
                width,
                kernel_initializer=make_initializer(init),
                # A normalization right after the Dense layer cancels its bias.
                use_bias=not (norm is not None and before),
                name=block_name(index),
            )
        )
        if norm is not None and before:
            layers.append(norm)
        layers.append(make_activation(activation, block_name(index, ACTIVATION)))
        if norm is not None and not before:
            layers.append(norm)
    return layers


def build_model(
    model: ModelConfig,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
) -> MonitoredSequential:
    """Flatten, the hidden stack, then a softmax layer with Keras' default init (as in the
    notebook, whose output layers never name an initializer). A Sequential whose training
    step can also check its gradients (`monitored`); without a monitor attached it
    trains exactly as keras.Sequential."""
    return MonitoredSequential(
        [
            keras.Input(shape=input_shape, name="image"),
            keras.layers.Flatten(name="flatten"),
            *hidden_stack(model.hidden_sizes(), init, activation, normalization),
            keras.layers.Dense(num_classes, activation="softmax", name="output"),
        ],
        name="mlp",
    )
