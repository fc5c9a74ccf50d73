"""A resolved config as dotted keys (`optimizer.learning_rate`): the run's params, and
the input of its config hash."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf


def flatten(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Every leaf under its dotted key; lists stay one value; Hydra's own node is left out."""
    node = (
        OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        if isinstance(cfg, DictConfig)
        else cfg
    )
    return {
        k: v for k, v in _leaves(node, "").items() if k != "hydra" and not k.startswith("hydra.")
    }


def _leaves(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_leaves(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
