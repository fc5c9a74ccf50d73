"""Weight initialization (the `init` group): its schema and one builder per option.

Options without a builder of their own are Keras initializers by name. Each call makes
a fresh initializer: Keras draws each unseeded one from the global seed, layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from experiments.core.options import Options


def _by_name(cfg: InitConfig):
    import keras

    return keras.initializers.get(cfg.name.value)


INITIALIZERS = Options("init", build=_by_name)
for _name in (
    "glorot_uniform",  # Keras' default
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
):
    INITIALIZERS.add(_name)


@INITIALIZERS.register("variance_scaling", uses={"scale", "mode", "distribution"})
def variance_scaling(cfg: InitConfig):
    import keras

    return keras.initializers.VarianceScaling(
        scale=cfg.scale, mode=cfg.mode.value, distribution=cfg.distribution.value
    )


@INITIALIZERS.register("random_normal", uses={"stddev"})
def random_normal(cfg: InitConfig):
    """Plain N(0, stddev): the naive init under which gradients vanish or explode."""
    import keras

    return keras.initializers.RandomNormal(mean=0.0, stddev=cfg.stddev)


InitName = INITIALIZERS.enum("InitName", __name__)


class Mode(str, Enum):
    fan_in = "fan_in"
    fan_out = "fan_out"
    fan_avg = "fan_avg"


class Distribution(str, Enum):
    truncated_normal = "truncated_normal"
    untruncated_normal = "untruncated_normal"
    uniform = "uniform"


@dataclass
class InitConfig:
    name: InitName = InitName.glorot_uniform
    scale: float | None = None
    mode: Mode | None = None
    distribution: Distribution | None = None
    stddev: float | None = None


def make_initializer(cfg: InitConfig):
    return INITIALIZERS.build(cfg.name, cfg)
