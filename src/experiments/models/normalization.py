"""Normalization inside the hidden blocks (the `normalization` group): its schema and one
builder per option. A builder returns the block's normalization layer, or None.

BatchNormalization (Ioffe & Szegedy 2015) normalizes each unit over the batch and keeps
moving statistics for inference; LayerNormalization (Ba et al. 2016) normalizes each
example over the block's units, the same way in training and inference, whatever the
batch. Only BN cancels the bias of a Dense layer right before it (it subtracts each
unit's batch mean); LN subtracts one mean per example, across units, which leaves a
per-unit bias in place. GroupNormalization (Wu & He 2018) normalizes each example over
groups of channels (and, in a conv net, all positions): like LN it does not depend on the
batch, and with `groups` equal to the channels it is instance normalization, with one
group LN over the whole feature map.

In a conv net every option works on the channel axis, the last: BN keeps one mean and
variance per channel, over the batch and every position (as Ioffe & Szegedy do for conv
layers); LN normalizes each position of each example over its channels (Keras' default
axis); GN each example over each group's channels and every position.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from experiments.core.options import Options
from experiments.models.naming import BATCHNORM, GROUPNORM, LAYERNORM, block_name

NORMALIZATIONS = Options("normalization")


@NORMALIZATIONS.register("none")
def no_normalization(cfg: NormalizationConfig, name: str):
    return None


@NORMALIZATIONS.register("batchnorm", uses={"position", "input_bn"})
def batchnorm(cfg: NormalizationConfig, name: str):
    import keras

    return keras.layers.BatchNormalization(name=name)


@NORMALIZATIONS.register("layernorm", uses={"position"})
def layernorm(cfg: NormalizationConfig, name: str):
    import keras

    return keras.layers.LayerNormalization(name=name)


@NORMALIZATIONS.register("groupnorm", uses={"position", "groups"})
def groupnorm(cfg: NormalizationConfig, name: str):
    import keras

    return keras.layers.GroupNormalization(groups=cfg.groups, axis=-1, name=name)


NormalizationName = NORMALIZATIONS.enum("NormalizationName", __name__)

# The role of each option's layer in a block's layer names (`hidden_07_bn`, `hidden_07_ln`).
ROLES = {
    "none": BATCHNORM,
    "batchnorm": BATCHNORM,
    "layernorm": LAYERNORM,
    "groupnorm": GROUPNORM,
}
# Options whose layer, right after a Dense layer, makes that layer's bias useless.
CANCELS_BIAS = frozenset({"batchnorm"})


class Position(str, Enum):
    after = "after"  # the activation
    before = "before"  # the activation; with batchnorm the Dense layer then has no bias


@dataclass
class NormalizationConfig:
    name: NormalizationName = NormalizationName.none
    position: Position | None = None
    # A normalization layer right after Flatten, as in the notebook's BN nets.
    input_bn: bool | None = None
    # groupnorm: channels (units) per layer are split into this many groups; it must
    # divide every layer's width.
    groups: int | None = None


def make_normalization(cfg: NormalizationConfig, name: str):
    return NORMALIZATIONS.build(cfg.name, cfg, name)


def block_normalization(cfg: NormalizationConfig, block: int):
    """Hidden block `block`'s normalization layer, named by its role, or None."""
    return make_normalization(cfg, block_name(block, ROLES[cfg.name.value]))
