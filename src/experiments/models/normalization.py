"""Normalization inside the hidden blocks (the `normalization` group): its schema and one
builder per option. A builder returns the block's normalization layer, or None."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from experiments.config.registry import Options

NORMALIZATIONS = Options("normalization")


@NORMALIZATIONS.register("none")
def no_normalization(cfg: NormalizationConfig, name: str):
    return None


@NORMALIZATIONS.register("batchnorm", uses={"position", "input_bn"})
def batchnorm(cfg: NormalizationConfig, name: str):
    import keras

    return keras.layers.BatchNormalization(name=name)


NormalizationName = NORMALIZATIONS.enum("NormalizationName", __name__)


class Position(str, Enum):
    after = "after"  # the activation
    before = "before"  # the activation; the Dense layer then has no bias


@dataclass
class NormalizationConfig:
    name: NormalizationName = NormalizationName.none
    position: Position | None = None
    # A normalization layer right after Flatten, as in the notebook's BN nets.
    input_bn: bool | None = None


def make_normalization(cfg: NormalizationConfig, name: str):
    return NORMALIZATIONS.build(cfg.name, cfg, name)
