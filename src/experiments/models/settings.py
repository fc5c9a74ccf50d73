"""The `model` group's schema (conf/model/*.yaml): the widths of the hidden stack and its
skips. Its builder is `models.blocks.build_model`. Kept apart from it because config-only
commands (`--help`, `--cfg job`, a bad value) import the schema and not Keras."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ResidualStyle(str, Enum):
    # He et al. 2016 (identity mappings): each block is [norm] -> act -> Dense and the
    # sum is left as it is, y = x + F(x): the shortcuts form a clean path to the input.
    pre = "pre"
    # He et al. 2015: the shortcut joins the last block's pre-activation, y = act(x + F(x)).
    post = "post"


@dataclass
class ModelConfig:
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

    def hidden_sizes(self) -> list[int]:
        return list(self.hidden) + [self.repeat_width] * self.repeat
