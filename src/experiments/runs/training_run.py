"""A training run: the config's net, compiled with its optimizer and schedule, fitted with
its gradient diagnostics (and, in a search, its trial's reporter), then finished by the
run's lifecycle."""

from __future__ import annotations

import logging

from experiments.config.schema import Config
from experiments.core import names
from experiments.data import Splits
from experiments.diagnostics.run import RunDiagnostics
from experiments.runs import continuation, lifecycle
from experiments.runs.continuation import Plan
from experiments.sweeps.pruning import MONITOR, TrialReporter
from experiments.tracking.session import RunSession
from experiments.training import loop as training
from experiments.training.checkpoint import Checkpoint, CheckpointCallback, HeldMetrics

log = logging.getLogger(__name__)


def train(
    cfg: Config,
    splits: Splits,
    session: RunSession,
    trial: TrialReporter | None = None,
    plan: Plan | None = None,
) -> float | None:
    """The run's final validation accuracy (its last one when the search pruned it), or
    None when training stopped on a non-finite value. With a `plan`, the run checkpoints
    every epoch, and a continued run starts from its checkpoint (runs.continuation)."""
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
    restored = plan.continued.checkpoint if plan and plan.continued else None
    if restored is None:
        session.log_params(
            {f"optimizer_config.{k}": v for k, v in training.optimizer_params(optimizer).items()}
        )
        session.log_metrics({names.PARAM_COUNT_METRIC: float(model.count_params())})
    else:
        restored.restore(model)
    held = HeldMetrics(session.log_metrics) if plan else None
    log_metrics = held.log if held else session.log_metrics
    diagnostics = None
    if cfg.diagnostics.enabled:
        diagnostics = RunDiagnostics.setup(
            model,
            splits.x_val,
            splits.y_val,
            cfg.diagnostics,
            cfg.activation.name.value,
            cfg.training.seed,
            log_metrics,
        )
    outcome = training.Outcome()
    if restored is not None:
        # What the earlier process measured, and the values it held when it stopped
        # (sent again with their own times: MLflow keeps each once).
        outcome.history = restored.extras["history"]
        outcome.epochs_run = restored.extras["epochs_run"]
        if diagnostics and restored.extras.get("diagnostics"):
            diagnostics.resume(restored.extras["diagnostics"], restored.epoch)
        held.pending = list(restored.pending)
        training.keep_history_before(session.output_dir, restored.epoch)
    callbacks = [
        *schedule_callbacks,
        *(diagnostics.callbacks if diagnostics else []),
        *filter(None, [trial]),
    ]
    if plan:
        callbacks.append(
            _checkpointing(plan, session, model, schedule_callbacks, held, outcome, diagnostics)
        )
    outcome = training.fit(
        model,
        splits,
        cfg.training,
        log_metrics,
        session.output_dir,
        extra_callbacks=callbacks,
        initial_epoch=restored.epoch if restored else 0,
        outcome=outcome,
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
    if plan:
        # The run has ended for good (finished, blew up, pruned): nothing to continue.
        continuation.drop(session, plan.path)
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


def _checkpointing(
    plan: Plan,
    session: RunSession,
    model,
    schedule_callbacks,
    held: HeldMetrics,
    outcome: training.Outcome,
    diagnostics: RunDiagnostics | None,
) -> CheckpointCallback:
    """The callback that writes the run's checkpoint (and names it on the run once it
    exists), then sends the metrics it held."""
    continued = plan.continued

    def make(epoch: int) -> Checkpoint:
        return Checkpoint.of(
            model,
            schedule_callbacks,
            config_hash=plan.config_hash,
            run_id=session.run_id,
            epoch=epoch,
            extras={
                "history": outcome.history,
                "epochs_run": outcome.epochs_run,
                "diagnostics": diagnostics.state() if diagnostics else None,
            },
            pending=held.pending,
        )

    def named() -> None:
        session.set_tags({names.CHECKPOINT_TAG: str(plan.path)})

    return CheckpointCallback(
        plan.path,
        held,
        make,
        initial_epoch=continued.epoch if continued else 0,
        restored=continued.checkpoint if continued else None,
        callbacks=schedule_callbacks,
        exploded=lambda: outcome.exploded,
        written=None if continued else named,
    )
