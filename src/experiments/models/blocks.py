"""Dense networks from config: init x activation x normalization placement x skips.

Every hidden block is a linear Dense layer, then its activation as a layer of its own,
with the normalization layer after the activation or between the two (see `naming`).
Keeping the activation out of the Dense layer computes exactly what
`Dense(activation=...)` computes, and it exposes each block's pre-activation, which the
gradient diagnostics read. LeakyReLU and PReLU are layers in the notebook too.

With `model.residual`, every `residual_every` blocks are wrapped in a skip connection
(identity when the widths match, a linear projection otherwise), and the net is a graph
rather than a chain. Two styles:

- pre (He et al. 2016, identity mappings; the default): each block runs
  [norm] -> act -> Dense, and the sum stays as it is: y = x + scale * F(x), a clean
  identity path from the output to the input. The first block's activation then reads
  the image itself, and the output layer reads the last sum;
- post (He et al. 2015): the shortcut is added to the last block's pre-activation, just
  before its activation: y = act(x + scale * F(x)).

Either way each block keeps its Dense layer and its activation layer, named as in a
plain net, so the diagnostics read both kinds of net alike.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import keras

from experiments.models.activations import ActivationConfig, make_activation
from experiments.models.initializers import InitConfig, make_initializer
from experiments.models.monitored import MonitoredFunctional, MonitoredSequential
from experiments.models.naming import ACTIVATION, ADD, SCALE, SKIP, block_name, parse_layer_name
from experiments.models.normalization import (
    CANCELS_BIAS,
    NormalizationConfig,
    Position,
    block_normalization,
    make_normalization,
)
from experiments.models.settings import ModelConfig, ResidualStyle


def block_layers(
    index: int,
    width: int,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
    *,
    dense_last: bool = False,
    linear: Callable[..., keras.layers.Layer] | None = None,
    spatial: bool = False,
) -> list[keras.layers.Layer]:
    """Hidden block `index`: Dense, [norm], act, [norm]; with `dense_last` (the
    pre-activation style) [norm], act, [norm], Dense. `linear(use_bias=, initializer=,
    name=)` makes the block's linear layer instead of a Dense one of `width` units (a
    conv net's Conv2D, `spatial`)."""
    before = normalization.position is Position.before
    norm = block_normalization(normalization, index)
    cancels_bias = norm is not None and before and normalization.name.value in CANCELS_BIAS
    make_linear = linear or functools.partial(keras.layers.Dense, width)
    dense = make_linear(
        kernel_initializer=make_initializer(init),
        # A BatchNormalization right after the linear layer cancels its bias.
        use_bias=dense_last or not cancels_bias,
        name=block_name(index),
    )
    act = make_activation(activation, block_name(index, ACTIVATION), spatial=spatial)
    around = [norm, act] if before else [act, norm]
    around = [layer for layer in around if layer is not None]
    return [*around, dense] if dense_last else [dense, *around]


def input_normalization(normalization: NormalizationConfig) -> list[keras.layers.Layer]:
    return [make_normalization(normalization, "input_bn")] if normalization.input_bn else []


def hidden_stack(
    sizes: list[int],
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
) -> list[keras.layers.Layer]:
    """The layers after Flatten and before the output layer, as a chain."""
    layers = input_normalization(normalization)
    for index, width in enumerate(sizes, start=1):
        layers.extend(block_layers(index, width, init, activation, normalization))
    return layers


def skip_groups(n_blocks: int, every: int) -> list[list[int]]:
    """Blocks 1..n in runs of `every` (the last run may be shorter), one skip around each."""
    return [list(range(i, min(i + every, n_blocks + 1))) for i in range(1, n_blocks + 1, every)]


def residual_stack(
    x,
    model: ModelConfig,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
):
    """The hidden blocks with their skips, applied to `x` (Flatten's output)."""
    sizes = model.hidden_sizes()
    groups = skip_groups(len(sizes), model.residual_every)
    pre = model.residual_style is ResidualStyle.pre

    def layers_of(index: int) -> list[keras.layers.Layer]:
        return block_layers(
            index, sizes[index - 1], init, activation, normalization, dense_last=pre
        )

    def project(shortcut, branch, block: int):
        if shortcut.shape[-1] == branch.shape[-1]:
            return shortcut
        return keras.layers.Dense(
            sizes[block - 1],
            use_bias=False,
            kernel_initializer=make_initializer(init),
            name=block_name(block, SKIP),
        )(shortcut)

    return with_skips(x, groups, layers_of, project, branch_scale(model, len(groups)), pre)


def branch_scale(model: ModelConfig, n_skips: int) -> float:
    """model.residual_scale, or by default 1/sqrt(number of skips): each unnormalized
    skip adds its branch's variance to the sum's, and 1/sqrt(L) keeps the product of L
    factors (1 + 1/L) below e (Hayou et al. 2021, "stable ResNet")."""
    if model.residual_scale is not None:
        return model.residual_scale
    return 1.0 / math.sqrt(max(n_skips, 1))


def with_skips(
    x,
    groups: list[list[int]],
    layers_of: Callable[[int], list[keras.layers.Layer]],
    project: Callable,
    scale: float,
    pre: bool,
):
    """Blocks `groups` (block numbers) applied to `x`, one skip around each group: the
    group's input, projected by `project(shortcut, branch, last block)` where its shape
    differs from the branch's,
    plus `scale` times the group's output. Post style: the sum goes into the last
    block's activation (and what follows it)."""
    for group in groups:
        shortcut, last = x, group[-1]
        tail: list[keras.layers.Layer] = []
        for index in group:
            layers = layers_of(index)
            tail = [] if pre or index != last else layers[_activation_position(layers) :]
            for layer in layers[: len(layers) - len(tail)]:
                x = layer(x)
        x = _add_shortcut(project(shortcut, x, last), x, last, scale)
        for layer in tail:
            x = layer(x)
    return x


def _activation_position(layers: list[keras.layers.Layer]) -> int:
    return next(
        i
        for i, layer in enumerate(layers)
        if (parse_layer_name(layer.name) or (0, None))[1] == ACTIVATION
    )


def _add_shortcut(shortcut, branch, block: int, scale: float):
    if scale != 1.0:
        branch = keras.layers.Rescaling(scale, name=block_name(block, SCALE))(branch)
    return keras.layers.Add(name=block_name(block, ADD))([shortcut, branch])


def build_dense_model(
    model: ModelConfig,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
) -> keras.Model:
    """Flatten, the hidden stack, then a softmax layer with Keras' default init (as in the
    notebook, whose output layers never name an initializer). A model whose training
    step can also check its gradients (`monitored`); without a monitor attached it
    trains exactly as Keras' own: a Sequential for a plain net, a functional graph for a
    residual one."""
    if model.residual:
        inputs = keras.Input(shape=input_shape, name="image")
        x = keras.layers.Flatten(name="flatten")(inputs)
        for layer in input_normalization(normalization):
            x = layer(x)
        x = residual_stack(x, model, init, activation, normalization)
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="output")(x)
        return MonitoredFunctional(inputs, outputs, name="residual_mlp")
    return MonitoredSequential(
        [
            keras.Input(shape=input_shape, name="image"),
            keras.layers.Flatten(name="flatten"),
            *hidden_stack(model.hidden_sizes(), init, activation, normalization),
            keras.layers.Dense(num_classes, activation="softmax", name="output"),
        ],
        name="mlp",
    )
