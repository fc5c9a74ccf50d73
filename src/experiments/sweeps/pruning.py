"""A trial's side of pruning: its val_accuracy goes to the study every epoch, and
training stops when the search's pruner says so (Optuna's own integration callbacks
live in optuna-integration, which pins its own Keras; this one is a few lines). The run
of a pruned trial ends through the run lifecycle like any other (runs.lifecycle.finish):
its curves, diagnostics and gradient verdict kept, no test evaluation, KILLED with
`trial_state=pruned`.
"""

from __future__ import annotations

import logging
import math

import keras
from hydra.utils import instantiate

from experiments.core import names
from experiments.sweeps.objective import MONITOR
from hydra_plugins.gradlab_optuna_sweeper.job import JobTrial

log = logging.getLogger(__name__)


class TrialReporter(keras.callbacks.Callback):
    def __init__(self, trial, job: JobTrial):
        super().__init__()
        self.trial = trial
        self.job = job
        self.pruned_epoch: int | None = None

    @classmethod
    def open(cls, job: JobTrial, pruner_config) -> TrialReporter:
        """The reporter of the job's trial, with the search's pruner."""
        pruner = instantiate(pruner_config) if pruner_config is not None else None
        return cls(job.open(pruner), job)

    @property
    def pruned(self) -> bool:
        return self.pruned_epoch is not None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(MONITOR)
        if self.model.stop_training or value is None or not math.isfinite(float(value)):
            return  # an exploding run stopped already: it ends FAILED with the worst value
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            self.pruned_epoch = epoch
            self.model.stop_training = True

    def tell_pruned(self) -> tuple[dict[str, object], str]:
        """Tells the study the trial was pruned; returns the run's tags and end reason."""
        from optuna.trial import TrialState  # with the trial: Optuna is loaded already

        self.trial.study.tell(self.trial.number, state=TrialState.PRUNED)
        reason = (
            f"pruned at epoch {self.pruned_epoch} by {type(self.trial.study.pruner).__name__} "
            f"(trial {self.job.number} of study {self.job.study_name!r})"
        )
        tags = {
            names.TRIAL_STATE_TAG: names.TRIAL_PRUNED,
            names.PRUNED_EPOCH_TAG: self.pruned_epoch,
        }
        return tags, reason
