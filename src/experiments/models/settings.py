"""The `model` group's schema (conf/model/*.yaml): a dense net (mlp, deep: the widths of
its hidden stack) or a conv net (cnn: stages of 3x3 conv blocks, global average pooling,
then a dense head), with or without skips. Its builder is `models.nets.build_model`
(`models.blocks` for a dense net, `models.conv` for a conv one). Kept apart from them because
config-only commands (`--help`, `--cfg job`, a bad value) import the schema and not
Keras."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ModelKind(str, Enum):
    dense = "dense"  # Flatten, then Dense blocks (model=mlp, model=deep)
    conv = "conv"  # stages of 3x3 Conv2D blocks, global average pooling, Dense head (model=cnn)


class Downsample(str, Enum):
    # The first conv of every stage after the first has stride 2 (ResNet's way).
    stride = "stride"
    # A 2x2 max-pooling layer between stages (VGG's way).
    pool = "pool"


# The fields only a conv net reads (config.checks refuses them on a dense net).
CONV_FIELDS = ("filters", "blocks", "stem", "downsample")


class ResidualStyle(str, Enum):
    # He et al. 2016 (identity mappings): each block is [norm] -> act -> Dense and the
    # sum is left as it is, y = x + F(x): the shortcuts form a clean path to the input.
    pre = "pre"
    # He et al. 2015: the shortcut joins the last block's pre-activation, y = act(x + F(x)).
    post = "post"


@dataclass
class ModelConfig:
    kind: ModelKind = ModelKind.dense
    # Explicit widths first, then `repeat` more layers of `repeat_width` units:
    # the 100-layer SELU net is hidden=[300], repeat=99, repeat_width=100.
    hidden: list[int] = field(default_factory=lambda: [300, 100])
    repeat: int = 0
    repeat_width: int = 100
    # Skip connections around every `residual_every` hidden blocks (models.blocks).
    residual: bool = False
    residual_every: int = 2
    residual_style: ResidualStyle = ResidualStyle.pre
    # The branch's factor, x + scale * F(x); null: 1/sqrt(number of skips), which keeps an
    # unnormalized residual net's activations at their scale at initialization.
    residual_scale: float | None = None
    # Conv nets (kind=conv) only. Stage s has `filters[s]` channels and `blocks[s]` conv
    # blocks (3x3 conv, [norm], act); with model.residual every `residual_every` blocks
    # of a stage share one skip (2: He et al.'s basic block). `stem`: the channels of one
    # conv block before the first stage (ResNet's first conv), 0 for none. A conv net's
    # `hidden` is its dense head, between global average pooling and the output layer.
    filters: list[int] | None = None
    blocks: list[int] | None = None
    stem: int | None = None
    downsample: Downsample | None = None

    def hidden_sizes(self) -> list[int]:
        """The widths of the Dense blocks: the whole hidden stack of a dense net, the
        head of a conv net."""
        return list(self.hidden) + [self.repeat_width] * self.repeat

    @property
    def is_conv(self) -> bool:
        return self.kind is ModelKind.conv

    def conv_stages(self) -> list[list[int]]:
        """The conv blocks of each stage, by their block number (1 = the stem's, or the
        first stage's first block): the stem, if any, is a stage of its own."""
        if not self.is_conv:
            return []
        stages, number = [], 1
        counts = ([1] if self.stem else []) + list(self.blocks or [])
        for count in counts:
            stages.append(list(range(number, number + count)))
            number += count
        return stages

    def stage_starts(self) -> dict[int, int]:
        """A conv net's stages (1, 2, ... as model.filters lists them; 0: the stem) and
        the number of the first block of each."""
        first_stage = 0 if self.stem else 1
        return {first_stage + i: blocks[0] for i, blocks in enumerate(self.conv_stages())}

    def num_blocks(self) -> int:
        """Hidden blocks, as the diagnostics number them: conv blocks, then Dense ones."""
        return sum(len(s) for s in self.conv_stages()) + len(self.hidden_sizes())
