"""Dense networks from config: init x activation x Batch Normalization placement.

Every hidden block is `hidden_NN` (a linear Dense), then `hidden_NN_act` (the
activation as its own layer), with `hidden_NN_bn` after the activation or between the
two. Keeping the activation out of the Dense layer computes exactly what
`Dense(activation=...)` computes, and it exposes each block's pre-activation, which the
gradient diagnostics read. LeakyReLU and PReLU are layers in the notebook too.
"""

from __future__ import annotations

import keras

from experiments.config import (
    ActivationConfig,
    ActivationName,
    InitConfig,
    InitName,
    ModelConfig,
    NormalizationConfig,
    NormalizationName,
    Position,
)
from experiments.step_monitor import MonitoredSequential

_INIT_CLASSES = {
    InitName.glorot_uniform: "GlorotUniform",
    InitName.glorot_normal: "GlorotNormal",
    InitName.he_normal: "HeNormal",
    InitName.he_uniform: "HeUniform",
    InitName.lecun_normal: "LecunNormal",
    InitName.lecun_uniform: "LecunUniform",
    InitName.orthogonal: "Orthogonal",
}


def block_name(index: int) -> str:
    """Hidden blocks are numbered from the input, from 1, zero-padded so they sort."""
    return f"hidden_{index:02d}"


def make_initializer(cfg: InitConfig) -> keras.initializers.Initializer:
    """A fresh initializer per layer: Keras draws each unseeded one from the global seed."""
    if cfg.name is InitName.variance_scaling:
        return keras.initializers.VarianceScaling(
            scale=cfg.scale, mode=cfg.mode.value, distribution=cfg.distribution.value
        )
    if cfg.name is InitName.random_normal:
        return keras.initializers.RandomNormal(mean=0.0, stddev=cfg.stddev)
    return getattr(keras.initializers, _INIT_CLASSES[cfg.name])()


def make_activation(cfg: ActivationConfig, name: str) -> keras.layers.Layer:
    if cfg.name is ActivationName.leaky_relu:
        return keras.layers.LeakyReLU(negative_slope=cfg.negative_slope, name=name)
    if cfg.name is ActivationName.prelu:
        return keras.layers.PReLU(name=name)
    if cfg.name is ActivationName.elu:
        return keras.layers.ELU(alpha=cfg.alpha, name=name)
    return keras.layers.Activation(cfg.name.value, name=name)


def hidden_stack(
    sizes: list[int],
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
) -> list[keras.layers.Layer]:
    """The layers after Flatten and before the output layer."""
    batchnorm = normalization.name is NormalizationName.batchnorm
    bn_before = batchnorm and normalization.position is Position.before
    layers: list[keras.layers.Layer] = []
    if batchnorm and normalization.input_bn:
        layers.append(keras.layers.BatchNormalization(name="input_bn"))
    for index, width in enumerate(sizes, start=1):
        name = block_name(index)
        layers.append(
            keras.layers.Dense(
                width, kernel_initializer=make_initializer(init), use_bias=not bn_before, name=name
            )
        )
        if bn_before:
            layers.append(keras.layers.BatchNormalization(name=f"{name}_bn"))
        layers.append(make_activation(activation, f"{name}_act"))
        if batchnorm and not bn_before:
            layers.append(keras.layers.BatchNormalization(name=f"{name}_bn"))
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
    step can also check its gradients (step_monitor); without a monitor attached it
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
