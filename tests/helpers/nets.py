"""Small nets and data as the entry point builds them: from composed configs."""

from __future__ import annotations

from experiments.config.schema import Config
from helpers.compose import typed


def hidden(sizes: list[int]) -> list[str]:
    """Overrides for a stack of these widths."""
    return [f"model.hidden=[{','.join(str(s) for s in sizes)}]", "model.repeat=0"]


def build_net(*overrides: str, input_shape=(28, 28), num_classes: int = 10, seed: int = 0):
    """(config, model) for these overrides: seeded, built and compiled with the config's
    optimizer and clipping, as a run does."""
    from experiments.models.nets import build_model
    from experiments.training import loop as training
    from experiments.training.optimizers import make_optimizer

    cfg: Config = typed(*overrides, f"training.seed={seed}")
    training.seed_everything(seed)
    model = build_model(
        cfg.model, cfg.init, cfg.activation, cfg.normalization, input_shape, num_classes
    )
    training.compile_model(model, make_optimizer(cfg.optimizer, cfg.clipping), cfg.training)
    return cfg, model


def synthetic_splits(*overrides: str):
    """The synthetic set as `data=synthetic` with these overrides loads it."""
    from experiments import data

    return data.load(typed("data=synthetic", *overrides).data)
