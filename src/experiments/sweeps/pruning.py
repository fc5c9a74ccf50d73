"""A trial's side of pruning: its val_accuracy goes to the study every epoch, and
training stops when the search's pruner says so (Optuna's own integration callbacks
live in optuna-integration, which pins its own Keras; this one is a few lines)."""

from __future__ import annotations

import logging
import math

import keras

from experiments.sweeps.trial import PRUNED, TRIAL_STATE_TAG, job_trial, trial_tags

log = logging.getLogger(__name__)
MONITOR = "val_accuracy"


class TrialReporter(keras.callbacks.Callback):
    def __init__(self, trial, job):
        super().__init__()
        self.trial = trial
        self.job = job
        self.pruned_epoch: int | None = None

    @classmethod
    def for_this_job(cls, session) -> TrialReporter | None:
        """The reporter of this job's trial, with its tags on the run; None when the job
        is not a trial."""
        found = job_trial()
        if found is None:
            return None
        job, pruner_config = found
        from hydra.utils import instantiate

        pruner = instantiate(pruner_config) if pruner_config is not None else None
        session.set_tags(trial_tags(job))
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

    def finish_pruned(self, session, model, outcome, diagnostics=None) -> float:
        """Ends the trial PRUNED in the study and the run KILLED with its tag, keeping
        its curves and diagnostics (no test evaluation: training stopped early)."""
        from optuna.trial import TrialState

        from experiments.tracking.artifacts import write_model_artifacts

        self.trial.study.tell(self.trial.number, state=TrialState.PRUNED)
        if diagnostics is not None:
            session.log_files(diagnostics.write_artifacts(session.output_dir))
        session.log_files(write_model_artifacts(model, outcome.history, session.output_dir))
        session.set_tags({TRIAL_STATE_TAG: PRUNED, "pruned_epoch": self.pruned_epoch})
        reason = (
            f"pruned at epoch {self.pruned_epoch} by {type(self.trial.study.pruner).__name__} "
            f"(trial {self.job.number} of study {self.job.study_name!r})"
        )
        session.end("KILLED", reason)
        log.info("%s; run %s ends KILLED", reason, session.run_id)
        return outcome.history[MONITOR][-1]
