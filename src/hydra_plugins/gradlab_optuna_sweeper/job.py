"""What a job launched by this sweeper learns about its trial, wherever it runs (a joblib
worker, a Ray node): the study's storage and name, and the trial's number, set in the
job's environment through Hydra's `hydra.job.env_set`, so they travel inside the job's
own config. A job opens its trial to report intermediate values and to ask whether to
stop (pruning).

Light on purpose: Hydra's plugin scan imports this module on every command (before it is
in sys.modules, hence no `from __future__ import annotations` beside a dataclass).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STORAGE_ENV = "GRADLAB_OPTUNA_STORAGE"
STUDY_ENV = "GRADLAB_OPTUNA_STUDY"
TRIAL_ENV = "GRADLAB_OPTUNA_TRIAL"


def env_override(name: str, value: object) -> str:
    """A Hydra override that sets `name=value` in a job's environment; quoted, so a
    database URL survives Hydra's override grammar."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"++hydra.job.env_set.{name}='{text}'"


@dataclass(frozen=True)
class JobTrial:
    storage: str
    study_name: str
    number: int

    @classmethod
    def from_env_set(cls, env_set: "Mapping[str, Any] | None") -> "JobTrial | None":
        """The trial of the job whose `hydra.job.env_set` this is; None outside a search."""
        env_set = env_set or {}
        if not all(env_set.get(k) not in (None, "") for k in (STORAGE_ENV, STUDY_ENV, TRIAL_ENV)):
            return None
        return cls(str(env_set[STORAGE_ENV]), str(env_set[STUDY_ENV]), int(env_set[TRIAL_ENV]))

    def open(self, pruner=None):
        """The live `optuna.trial.Trial` (report, should_prune) with the search's pruner."""
        import optuna

        from ._storage import open_storage

        storage = open_storage(self.storage)
        study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=pruner)
        study_id = storage.get_study_id_from_name(self.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
        return optuna.trial.Trial(study, trial_id)
