"""A training run: the config's net, compiled with its optimizer and schedule, fitted with
its gradient diagnostics (and, in a search, its trial's reporter), then finished by the
run's lifecycle."""

from __future__ import annotations

import logging

from experiments.config.schema import Config
from experiments.core import names
from experiments.data import Splits
from experiments.diagnostics.run import RunDiagnostics
from experiments.runs import lifecycle
from experiments.sweeps.pruning import MONITOR, TrialReporter
from experiments.tracking.session import RunSession
from experiments.training import loop as training

log = logging.getLogger(__name__)


def train(
    cfg: Config, splits: Splits, session: RunSession, trial: TrialReporter | None = None
) -> float | None:
    """The run's final validation accuracy (its last one when the search pruned it), or
    None when training stopped on a non-finite value."""
    model, optimizer, schedule_callbacks = training.compiled_model(
        splits,
        model=cfg.model,
        init=cfg.init,
        activation=cfg.activation,
        normalization=cfg.normalization,
        optimizer=cfg.optimizer,
        clipping=cfg.clipping,
        schedule=cfg.schedule,
        training=cfg.training,
    )
    session.log_params(
        {f"optimizer_config.{k}": v for k, v in training.optimizer_params(optimizer).items()}
    )
    session.log_metrics({names.PARAM_COUNT_METRIC: float(model.count_params())})
    diagnostics = None
    if cfg.diagnostics.enabled:
        diagnostics = RunDiagnostics.setup(
            model,
            splits.x_val,
            splits.y_val,
            cfg.diagnostics,
            cfg.activation.name.value,
            cfg.training.seed,
            session.log_metrics,
        )
    outcome = training.fit(
        model,
        splits,
        cfg.training,
        session.log_metrics,
        session.output_dir,
        extra_callbacks=[
            *schedule_callbacks,
            *(diagnostics.callbacks if diagnostics else []),
            *filter(None, [trial]),
        ],
    )
    if diagnostics:
        diagnostics.apply_failure(outcome)
    test = lifecycle.finish(
        session,
        model,
        outcome,
        splits,
        cfg.training,
        diagnostics=diagnostics,
        save_model=cfg.tracking.log_model,
        trial=trial,
    )
    if outcome.exploded:
        log.error("training stopped: %s; run %s ends FAILED", outcome.reason, session.run_id)
        return None
    val_accuracy = outcome.history[MONITOR][-1]
    if test is not None:
        log.info(
            "val_accuracy %.4f, test_accuracy %.4f (run %s)",
            val_accuracy,
            test["test_accuracy"],
            session.run_id,
        )
    return val_accuracy
