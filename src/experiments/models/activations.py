"""Activation functions (the `activation` group): its schema and one builder per option.

Every activation is a layer of its own after a linear Dense layer, so the diagnostics
can read each block's pre-activation. Options without a builder of their own are Keras
activations by name; LeakyReLU, PReLU and ELU are layers with parameters, as in the
notebook. `RELU_LIKE` and `SATURATING` tell the diagnostics which unit statistics mean
something for an option (dead units, saturated units).
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.core.options import Options


def _keras_activation(cfg: ActivationConfig, name: str):
    import keras

    return keras.layers.Activation(cfg.name.value, name=name)


ACTIVATIONS = Options("activation", build=_keras_activation)
for _name in ("sigmoid", "tanh", "relu"):
    ACTIVATIONS.add(_name)


@ACTIVATIONS.register("leaky_relu", uses={"negative_slope"})
def leaky_relu(cfg: ActivationConfig, name: str):
    import keras

    return keras.layers.LeakyReLU(negative_slope=cfg.negative_slope, name=name)


@ACTIVATIONS.register("prelu")
def prelu(cfg: ActivationConfig, name: str, shared_axes: list[int] | None = None):
    import keras

    return keras.layers.PReLU(shared_axes=shared_axes, name=name)


@ACTIVATIONS.register("elu", uses={"alpha"})
def elu(cfg: ActivationConfig, name: str):
    import keras

    return keras.layers.ELU(alpha=cfg.alpha, name=name)


for _name in ("selu", "gelu", "swish"):
    ACTIVATIONS.add(_name)

ActivationName = ACTIVATIONS.enum("ActivationName", __name__)

# Units that can die (output nothing on every input), and activations that saturate:
# (centre, half-width) of the band outside which a unit counts as saturated.
RELU_LIKE = frozenset({"relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "swish"})
SATURATING = {"sigmoid": (0.5, 0.49), "tanh": (0.0, 0.98)}


@dataclass
class ActivationConfig:
    name: ActivationName = ActivationName.relu
    negative_slope: float | None = None
    alpha: float | None = None


def make_activation(cfg: ActivationConfig, name: str, *, spatial: bool = False):
    """The activation layer; `spatial` (a conv layer's output, [batch, H, W, C]): PReLU
    learns one slope per channel, shared over positions, as He et al. 2015 do for conv
    layers, instead of one per position and channel."""
    if spatial and cfg.name.value == "prelu":
        return ACTIVATIONS.build(cfg.name, cfg, name, shared_axes=[1, 2])
    return ACTIVATIONS.build(cfg.name, cfg, name)
