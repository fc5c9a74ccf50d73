"""Resuming a sweep: a job whose identical config already FINISHED in the experiment is
skipped, so re-running an interrupted multirun adds only the runs it lacks.

Every run carries a `config_hash` tag: a digest of its resolved config without the keys
that cannot change what it computes (where runs are recorded, how much is printed, speed
settings, the data's folder). A job looks the digest up before it opens its run.
`tracking.skip_finished=false` runs every job again.
"""

from __future__ import annotations

import hashlib
import json
import logging

from omegaconf import DictConfig

from experiments.config.flatten import flatten

log = logging.getLogger(__name__)

HASH_TAG = "config_hash"
GROUP_TAG = "group_hash"
SEED_KEY = "training.seed"
# On the sweep's parent run: `skipped.<config hash>` = the earlier run that stood in.
SKIPPED_TAG_PREFIX = "skipped."
# Dotted prefixes left out of the digest; `training.steps_per_execution` and
# `training.eval_batch_size` only group the same steps into fewer calls.
IGNORED_KEYS = (
    "hydra",
    "tracking",
    "training.verbose",
    "training.steps_per_execution",
    "training.eval_batch_size",
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
    "model.residual": False,
    "model.residual_every": 2,
    "model.residual_style": "pre",
    "model.residual_scale": None,
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


def config_hash(resolved: DictConfig, ignored: tuple[str, ...] = ()) -> str:
    kept = {
        key: value
        for key, value in flatten(resolved).items()
        if not any(key == p or key.startswith(p + ".") for p in IGNORED_KEYS + ignored)
        and not (key in ADDED_LATER and value == ADDED_LATER[key])
    }
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def group_hash(resolved: DictConfig) -> str:
    """The digest without the seed: runs that differ only by their seed share it (the
    `group_hash` tag: one configuration, in the report and in the UI's "Group by")."""
    return config_hash(resolved, ignored=(SEED_KEY,))


def finished_run(client, experiment_id: str, digest: str):
    """The latest FINISHED run of the experiment with this config digest, or None."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.{HASH_TAG} = '{digest}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None


def skip(client, earlier, digest: str, parent_run_id: str | None) -> float | None:
    """Notes the skip on the sweep's parent run and returns the earlier run's final
    val_accuracy, so an optimizing sweeper still sees this config's value."""
    run_id = earlier.info.run_id
    log.info(
        "skipped: this config already FINISHED in run %s (%s); "
        "tracking.skip_finished=false runs it again",
        run_id,
        earlier.info.run_name,
    )
    if parent_run_id:
        client.set_tag(parent_run_id, SKIPPED_TAG_PREFIX + digest, run_id)
    return earlier.data.metrics.get("val_accuracy")


def skipped_count(parent_run) -> int:
    return sum(1 for key in parent_run.data.tags if key.startswith(SKIPPED_TAG_PREFIX))
