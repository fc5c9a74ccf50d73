"""A job that is an Optuna trial (hparams_search=optuna): which trial it is, the tags its
MLflow run carries, and how the sweep's parent counts a pruned child.

A pruned trial's run ends KILLED (it stopped before its last epoch, on purpose) with
the tag `trial_state=pruned`: KILLED keeps it out of the FINISHED runs that a re-run
skips, the tag tells it from a run stopped by Ctrl-C, and the parent counts it in
`children_pruned` instead of `children_killed`.
"""

from __future__ import annotations

from typing import Any

TRIAL_STATE_TAG = "trial_state"
PRUNED = "pruned"
PRUNED_COUNT = "PRUNED"


def job_trial():
    """This job's trial (`JobTrial`: storage, study, number) and the search's pruner
    config, or None when the job is not a trial of the project's Optuna sweeper."""
    from hydra.core.hydra_config import HydraConfig

    from hydra_plugins.gradlab_optuna_sweeper.job import JobTrial

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    found = JobTrial.from_env_set(hydra.job.get("env_set"))
    if found is None:
        return None
    return found, hydra.sweeper.get("pruner")


def trial_tags(trial) -> dict[str, Any]:
    return {"optuna_study": trial.study_name, "optuna_trial": trial.number}


def count_key(run) -> str:
    """The key of `MlflowSweepCallback.child_counts` this child run counts under."""
    if run.info.status == "KILLED" and run.data.tags.get(TRIAL_STATE_TAG) == PRUNED:
        return PRUNED_COUNT
    return run.info.status
