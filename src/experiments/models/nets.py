"""The config's net: a dense one (`models.blocks`) or a conv one (`models.conv`), as
model.kind says."""

from __future__ import annotations

import keras

from experiments.models.activations import ActivationConfig
from experiments.models.blocks import build_dense_model
from experiments.models.conv import build_conv_model
from experiments.models.initializers import InitConfig
from experiments.models.normalization import NormalizationConfig
from experiments.models.settings import ModelConfig


def build_model(
    model: ModelConfig,
    init: InitConfig,
    activation: ActivationConfig,
    normalization: NormalizationConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
) -> keras.Model:
    """The hidden blocks of the config under a softmax layer of `num_classes` units."""
    build = build_conv_model if model.is_conv else build_dense_model
    return build(model, init, activation, normalization, input_shape, num_classes)
