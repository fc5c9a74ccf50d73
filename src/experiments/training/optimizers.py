"""Optimizers and gradient clipping (the `optimizer` and `clipping` groups): their
schemas and one builder per option.

A clipping option builds the keyword arguments that Keras optimizers take for it
(`clipvalue`, `clipnorm`, `global_clipnorm`); an optimizer option builds the optimizer
with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.core.options import Options

CLIPPINGS = Options("clipping")


@CLIPPINGS.register("none")
def no_clipping(cfg: ClippingConfig) -> dict[str, float]:
    return {}


@CLIPPINGS.register("value", uses={"threshold"})
def clip_value(cfg: ClippingConfig) -> dict[str, float]:
    return {"clipvalue": cfg.threshold}


@CLIPPINGS.register("norm", uses={"threshold"})
def clip_norm(cfg: ClippingConfig) -> dict[str, float]:
    return {"clipnorm": cfg.threshold}


@CLIPPINGS.register("global_norm", uses={"threshold"})
def clip_global_norm(cfg: ClippingConfig) -> dict[str, float]:
    return {"global_clipnorm": cfg.threshold}


ClippingName = CLIPPINGS.enum("ClippingName", __name__)


@dataclass
class ClippingConfig:
    name: ClippingName = ClippingName.none
    threshold: float | None = None


OPTIMIZERS = Options("optimizer")


def _adam_family(keras_class: str):
    def build(cfg: OptimizerConfig, **common):
        import keras

        optimizer = getattr(keras.optimizers, keras_class)
        return optimizer(beta_1=cfg.beta_1, beta_2=cfg.beta_2, **common)

    return build


@OPTIMIZERS.register("sgd", uses={"momentum", "nesterov"})
def sgd(cfg: OptimizerConfig, **common):
    import keras

    return keras.optimizers.SGD(momentum=cfg.momentum, nesterov=cfg.nesterov, **common)


# Adam and the variants with its two moment decays and nothing more.
for _name, _class in (("adam", "Adam"), ("nadam", "Nadam"), ("adamax", "Adamax")):
    OPTIMIZERS.add(_name, uses={"beta_1", "beta_2"}, build=_adam_family(_class))


@OPTIMIZERS.register("rmsprop", uses={"rho", "momentum"})
def rmsprop(cfg: OptimizerConfig, **common):
    import keras

    return keras.optimizers.RMSprop(rho=cfg.rho, momentum=cfg.momentum, **common)


@OPTIMIZERS.register("adagrad", uses={"initial_accumulator_value"})
def adagrad(cfg: OptimizerConfig, **common):
    import keras

    return keras.optimizers.Adagrad(
        initial_accumulator_value=cfg.initial_accumulator_value, **common
    )


@OPTIMIZERS.register("adamw", uses={"beta_1", "beta_2", "weight_decay"})
def adamw(cfg: OptimizerConfig, **common):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): each step also takes
    learning_rate * weight_decay * w off every weight, outside the adaptive update."""
    import keras

    return keras.optimizers.AdamW(
        weight_decay=cfg.weight_decay, beta_1=cfg.beta_1, beta_2=cfg.beta_2, **common
    )


OptimizerName = OPTIMIZERS.enum("OptimizerName", __name__)


@dataclass
class OptimizerConfig:
    name: OptimizerName = OptimizerName.sgd
    learning_rate: float = 1e-3
    momentum: float | None = None
    nesterov: bool | None = None
    beta_1: float | None = None
    beta_2: float | None = None
    rho: float | None = None
    initial_accumulator_value: float | None = None
    weight_decay: float | None = None


def make_optimizer(cfg: OptimizerConfig, clipping: ClippingConfig, learning_rate=None):
    """The optimizer with the clipping's arguments and its learning rate: `learning_rate`
    when given (a schedule's, see `training.schedules`), else the config's number."""
    rate = cfg.learning_rate if learning_rate is None else learning_rate
    common = {"learning_rate": rate, **CLIPPINGS.build(clipping.name, clipping)}
    return OPTIMIZERS.build(cfg.name, cfg, **common)
