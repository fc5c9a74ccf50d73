"""Configs as the entry point composes them, with Hydra's compose API (no TensorFlow)."""

from __future__ import annotations

from experiments.config.checks import validate
from experiments.config.schema import Config
from experiments.paths import CONF_DIR

# Small, quick runs on the synthetic set; a learning rate that learns it in a few epochs.
# The diagnostics' figures (about a second a run) only where a test looks at them.
FAST = [
    "data=synthetic",
    "training.epochs=2",
    "training.verbose=0",
    "optimizer.learning_rate=0.05",
    "diagnostics.plots=false",
]


def compose(overrides: list[str] | None = None, return_hydra_config: bool = False):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(
            "config", overrides=list(overrides or []), return_hydra_config=return_hydra_config
        )


def typed(*overrides: str) -> Config:
    """The validated config of these overrides, as the entry point's run sees it."""
    return validate(compose(list(overrides)))
