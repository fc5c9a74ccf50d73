"""The config digest: which keys of a resolved config can change what a run computes,
and their hash. One list of ignored keys serves the `config_hash` tag (a sweep resumed
skips what FINISHED), the `group_hash` tag (one configuration over seeds), the run's name
(overrides that change nothing are not shown) and the report's factors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from experiments.core.flatten import flatten

# The seed is not ignored by the config hash (each seed is its own run), only by the
# group hash (the seeds of one configuration).
SEED_KEY = "training.seed"
# Dotted prefixes left out of the digest; `training.steps_per_execution` and
# `training.eval_batch_size` only group the same steps into fewer calls.
IGNORED_KEYS = (
    "hydra",
    "tracking",
    "training.verbose",
    "training.steps_per_execution",
    "training.eval_batch_size",
    # A run continued from its checkpoint computes what it would have without stopping.
    "training.checkpoint",
    "data.dir",
    # Where model A is registered: the study computes the same either way.
    "transfer.register_as",
    "transfer.register_alias",
)

# Keys added after digests were first recorded, each with the value that computes what
# the lab computed before it existed: a key holding that value is left out, so the digest
# of a config that does not use it stays the one recorded earlier (and a sweep started
# then is still resumed). A new key goes here with its neutral value.
ADDED_LATER: dict[str, object] = {
    "transfer.source": None,
    "data.path": None,
    "model.residual": False,
    "model.residual_every": 2,
    "model.residual_style": "pre",
    "model.residual_scale": None,
    # The conv nets (model=cnn) and GroupNorm.
    "model.kind": "dense",
    "model.filters": None,
    "model.blocks": None,
    "model.stem": None,
    "model.downsample": None,
    "normalization.groups": None,
    "optimizer.initial_accumulator_value": None,
    "optimizer.weight_decay": None,
    "schedule.name": "constant",
    **{
        f"schedule.{key}": None
        for key in (
            "decay_rate",
            "decay_epochs",
            "boundaries",
            "factors",
            "factor",
            "patience",
            "div_factor",
            "final_div_factor",
            "annealing_fraction",
            "warmup_fraction",
            "alpha",
        )
    },  # fmt: skip
}


def is_ignored(key: str, also: tuple[str, ...] = ()) -> bool:
    """True for a dotted key under one of IGNORED_KEYS (or `also`): it cannot change what
    a run computes."""
    return any(key == p or key.startswith(p + ".") for p in IGNORED_KEYS + also)


def config_hash(resolved: DictConfig | Mapping[str, Any], ignored: tuple[str, ...] = ()) -> str:
    kept = {
        key: value
        for key, value in flatten(resolved).items()
        if not is_ignored(key, ignored) and not (key in ADDED_LATER and value == ADDED_LATER[key])
    }
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def group_hash(resolved: DictConfig | Mapping[str, Any]) -> str:
    """The digest without the seed: runs that differ only by their seed share it (the
    `group_hash` tag: one configuration, in the report and in the UI's "Group by")."""
    return config_hash(resolved, ignored=(SEED_KEY,))
