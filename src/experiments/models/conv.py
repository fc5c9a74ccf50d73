"""Conv nets from config (model=cnn): stages of 3x3 conv blocks, global average pooling,
then a dense head, with every group applied as it is to the dense nets.

A conv block is the dense block with a Conv2D layer (3x3, `same` padding) in place of
the Dense one: Conv2D `hidden_NN`, [norm], its activation `hidden_NN_act`, [norm]
(`blocks.block_layers`), so the diagnostics find its kernel and its pre-activation the
same way. Keras' initializers take a conv kernel's fan-in as k*k*c_in (and its fan-out as
k*k*c_out), the fan-in of He et al. 2015's derivation for conv layers. Normalization
works on the channel axis: BN per channel over the batch and every position.

    [Reshape to HxWx1 when the images have no channel axis]  [input BN]
    [stem: one conv block]                                   (ResNet's first conv)
    stage 1: blocks[0] conv blocks of filters[0] channels
    stage 2: downsampling (stride 2 in its first conv, or 2x2 max pooling before it),
             blocks[1] conv blocks of filters[1] channels ...
    global average pooling, the head's Dense blocks (model.hidden), softmax output

With `model.residual`, every `residual_every` conv blocks of a stage share one skip
(2: He et al. 2016's basic block of two 3x3 convs); where the shape changes (more
channels, stride 2) the shortcut is a 1x1 conv with that stride, `hidden_NN_skip` (He et
al.'s projection shortcut, option B). The styles (pre-activation or post) and the
branch scale are those of the dense residual nets (`blocks.with_skips`). A residual conv
net has a stem (config.checks): a plain conv block [conv, norm, act] in either style,
without a skip, as ResNet's first conv (a pre-activation block, norm and act first,
would normalize the image's one to three channels). The head has no skip either.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import keras

from experiments.models.activations import ActivationConfig
from experiments.models.blocks import (
    block_layers,
    branch_scale,
    input_normalization,
    skip_groups,
    with_skips,
)
from experiments.models.initializers import InitConfig, make_initializer
from experiments.models.monitored import MonitoredFunctional, MonitoredSequential
from experiments.models.naming import SKIP, block_name
from experiments.models.normalization import NormalizationConfig
from experiments.models.settings import Downsample, ModelConfig, ResidualStyle

KERNEL_SIZE = 3


@dataclass(frozen=True)
class ConvBlock:
    number: int  # the hidden block's number, from 1 at the input
    stage: int  # 0: the stem; 1, 2, ...: model.filters' stages
    filters: int
    strides: int
    pool_before: bool  # a 2x2 max pooling layer before this block


def conv_blocks(model: ModelConfig) -> list[ConvBlock]:
    """The conv blocks in order, with their stage, channels and downsampling."""
    stage_filters = ([model.stem] if model.stem else []) + list(model.filters or [])
    first_stage = 0 if model.stem else 1
    blocks = []
    for offset, numbers in enumerate(model.conv_stages()):
        stage = first_stage + offset
        for number in numbers:
            downsample = stage > 1 and number == numbers[0]
            blocks.append(
                ConvBlock(
                    number,
                    stage,
                    stage_filters[offset],
                    strides=2 if downsample and model.downsample is Downsample.stride else 1,
                    pool_before=downsample and model.downsample is Downsample.pool,
                )
            )
    return blocks


def _conv_block_layers(
    block: ConvBlock,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
    dense_last: bool = False,
) -> list[keras.layers.Layer]:
    linear = functools.partial(
        keras.layers.Conv2D, block.filters, KERNEL_SIZE, strides=block.strides, padding="same"
    )
    return block_layers(
        block.number,
        block.filters,
        init,
        activation,
        normalization,
        dense_last=dense_last,
        linear=linear,
        spatial=True,
    )


def _pool(stage: int) -> keras.layers.Layer:
    return keras.layers.MaxPooling2D(2, name=f"pool_{stage:02d}")


def _input_layers(
    input_shape: tuple[int, ...], normalization: NormalizationConfig
) -> list[keras.layers.Layer]:
    """A channel axis for HxW images, then the input normalization (per channel)."""
    layers = []
    if len(input_shape) == 2:
        layers.append(keras.layers.Reshape((*input_shape, 1), name="channels"))
    elif len(input_shape) != 3:
        raise ValueError(f"model=cnn needs HxW or HxWxC images, not shape {input_shape}")
    return layers + input_normalization(normalization)


def _head(
    model: ModelConfig,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
    first: int,
) -> list[keras.layers.Layer]:
    """Global average pooling, then the Dense blocks of model.hidden, numbered from `first`."""
    layers: list[keras.layers.Layer] = [keras.layers.GlobalAveragePooling2D(name="global_pool")]
    for index, width in enumerate(model.hidden_sizes(), start=first):
        layers.extend(block_layers(index, width, init, activation, normalization))
    return layers


def _softmax(num_classes: int) -> keras.layers.Layer:
    return keras.layers.Dense(num_classes, activation="softmax", name="output")


def build_conv_model(
    model: ModelConfig,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    output: keras.layers.Layer | None = None,
    name: str | None = None,
) -> keras.Model:
    """The conv net under a softmax layer of `num_classes` units (or `output`): a chain
    (MonitoredSequential) without skips, a graph (MonitoredFunctional) with them."""
    blocks = conv_blocks(model)
    head = _head(model, init, activation, normalization, first=len(blocks) + 1)
    output = output or _softmax(num_classes)
    if not model.residual:
        layers = [keras.Input(shape=input_shape, name="image")]
        layers += _input_layers(input_shape, normalization)
        for block in blocks:
            if block.pool_before:
                layers.append(_pool(block.stage))
            layers += _conv_block_layers(block, init, activation, normalization)
        return MonitoredSequential([*layers, *head, output], name=name or "cnn")

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for layer in _input_layers(input_shape, normalization):
        x = layer(x)
    pre = model.residual_style is ResidualStyle.pre
    by_number = {b.number: b for b in blocks}
    stem = [b for b in blocks if b.stage == 0]
    stages = sorted({b.stage for b in blocks} - {0})
    groups = {
        stage: skip_groups_of([b.number for b in blocks if b.stage == stage], model)
        for stage in stages
    }
    scale = branch_scale(model, sum(len(g) for g in groups.values()))

    def layers_of(number: int) -> list[keras.layers.Layer]:
        return _conv_block_layers(by_number[number], init, activation, normalization, pre)

    def project(shortcut, branch, block: int):
        if tuple(shortcut.shape[1:]) == tuple(branch.shape[1:]):
            return shortcut
        return keras.layers.Conv2D(
            branch.shape[-1],
            1,
            strides=shortcut.shape[1] // branch.shape[1],
            use_bias=False,
            kernel_initializer=make_initializer(init),
            name=block_name(block, SKIP),
        )(shortcut)

    for block in stem:  # a plain block in either style: the image has too few channels
        for layer in _conv_block_layers(block, init, activation, normalization):
            x = layer(x)
    for stage in stages:
        if by_number[groups[stage][0][0]].pool_before:
            x = _pool(stage)(x)
        x = with_skips(x, groups[stage], layers_of, project, scale, pre)
    for layer in [*head, output]:
        x = layer(x)
    return MonitoredFunctional(inputs, x, name=name or "resnet")


def skip_groups_of(numbers: list[int], model: ModelConfig) -> list[list[int]]:
    """A stage's blocks in runs of model.residual_every, one skip around each run."""
    offset = numbers[0] - 1
    return [[n + offset for n in g] for g in skip_groups(len(numbers), model.residual_every)]
