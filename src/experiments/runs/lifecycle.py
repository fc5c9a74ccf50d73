"""A run's lifecycle, the one every run the lab records goes through (a training run or a
sweep job, an Optuna trial, pruned or not, the transfer study and each of its nested runs):

    session = open_run(client, experiment_id, name, tags, output_dir, parent)
    with session.closing():            # an error ends it FAILED, Ctrl-C or SIGTERM KILLED
        log_config(session, resolved, overrides); log_data(session, splits, ...)
        ...train...
        finish(session, model, outcome, splits, training, diagnostics=..., trial=...)

`finish` evaluates on the test split (unless training exploded or the trial was pruned),
writes and logs the run's artifacts, tags the gradient verdict (`gradient_health`), then
ends the run FINISHED; FAILED with the failure's tags when training exploded; KILLED with
`trial_state=pruned` when the search pruned the trial. A run that ends before `finish`
(an error, an interrupt) is tagged `unknown`. Once training is over, a file that cannot
be written (a full disk) costs that file, never the run's end (`RunSession.made`).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from omegaconf import DictConfig

from experiments.core import names
from experiments.core.flatten import flatten
from experiments.data import Splits
from experiments.diagnostics.verdict import Verdict, judge, unknown
from experiments.runs.artifacts import write_config_artifacts, write_model_artifacts
from experiments.tracking.datasets import source_of
from experiments.tracking.session import RunSession
from experiments.training.settings import TrainingConfig

if TYPE_CHECKING:
    from experiments.training.loop import Outcome

log = logging.getLogger(__name__)


class Diagnostics(Protocol):
    """What a run's diagnostics add at its end (see experiments.diagnostics.run)."""

    record: Any  # the DiagnosticsRecord that the gradient verdict reads

    def write_artifacts(self, output_dir: Path) -> list[tuple[Path, str | None]]: ...

    def failure_tags(self) -> dict[str, object]: ...


class PrunableTrial(Protocol):
    """An Optuna trial's side of the run (experiments.sweeps.pruning.TrialReporter)."""

    @property
    def pruned(self) -> bool: ...

    def tell_pruned(self) -> tuple[dict[str, Any], str]:
        """Tells the study the trial was pruned; the run's tags and end reason."""
        ...


def open_run(
    client,
    experiment_id: str,
    name: str,
    tags: dict[str, Any],
    output_dir: Path,
    parent_run_id: str | None = None,
    description: str | None = None,
) -> RunSession:
    """The run, open in the store, which gets the `unknown` verdict if it ends unjudged."""
    session = RunSession.open(
        client, experiment_id, name, tags, output_dir, parent_run_id, description
    )
    session.before_end = partial(_judged_unknown_if_unjudged, session)
    return session


def reopen_run(client, run_id: str, tags: dict[str, Any], output_dir: Path) -> RunSession:
    """An earlier run, continued from its checkpoint (runs.continuation): RUNNING again,
    judged at its end as any run."""
    session = RunSession.reopen(client, run_id, tags, output_dir)
    session.before_end = partial(_judged_unknown_if_unjudged, session)
    return session


def _judged_unknown_if_unjudged(session: RunSession, status: str) -> None:
    if session.verdict is None:
        set_verdict(session, unknown(f"the run ended {status} before it was judged"))


def set_verdict(session: RunSession, verdict: Verdict) -> None:
    """The `gradient_health*` tags; every run carries them before it ends."""
    session.verdict = verdict
    session.set_tags(verdict.tags())


def end_judged(
    session: RunSession, verdict: Verdict, status: str, reason: str | None = None
) -> None:
    """The run's verdict, then its end (a run whose own training the verdict summarizes,
    as the transfer study's run does for its phases)."""
    set_verdict(session, verdict)
    session.end(status, reason)


def log_config(session: RunSession, resolved: DictConfig, overrides: list[str]) -> None:
    """The resolved config as params (dotted keys) and as files."""
    session.log_params(flatten(resolved))
    session.log_made(lambda out: write_config_artifacts(resolved, overrides, out), "config")


def log_data(session: RunSession, splits: Splits, data_cfg, name: str | None = None) -> None:
    """The splits as the run's dataset inputs, named after the data group (or `name`)."""
    session.log_splits(splits, name or data_cfg.name.value, source_of(data_cfg, splits.folder))


def finish(
    session: RunSession,
    model,
    outcome: Outcome,
    data: Splits,
    training: TrainingConfig,
    *,
    history: dict[str, list[float]] | None = None,
    diagnostics: Diagnostics | None = None,
    save_model: bool = True,
    trial: PrunableTrial | None = None,
) -> dict[str, float] | None:
    """Test metrics (None if training exploded or the trial was pruned), artifacts, the
    verdict, then the run's end. `data` holds the test split; `history` defaults to the
    outcome's own."""
    # Keras, with the loop: a run that ends before training never imports it.
    from experiments.training.loop import evaluate

    history = outcome.history if history is None else history
    last_step = max(len(history.get("loss", [])) - 1, 0)
    pruned = trial is not None and trial.pruned and not outcome.exploded
    test = None
    if not outcome.exploded and not pruned:
        test = evaluate(model, data.x_test, data.y_test, training)
        # A continued run whose earlier process stopped after this very line has them.
        if not session.holds(next(iter(test)), last_step):
            session.log_metrics(test, step=last_step)
    if diagnostics is not None:
        session.log_made(diagnostics.write_artifacts, "diagnostics files")
    session.log_made(
        lambda folder: write_model_artifacts(model, history, folder), "model summary and plots"
    )
    if save_model and test is not None:
        session.log_trained_model(model, data.x_test, last_step)
    record = diagnostics.record if diagnostics is not None else None
    set_verdict(session, judge(record, outcome.failed_epoch, outcome.reason))
    if outcome.exploded:
        failure_tags = diagnostics.failure_tags() if diagnostics is not None else {}
        session.set_tags({names.FAILED_EPOCH_TAG: outcome.failed_epoch, **failure_tags})
        session.end("FAILED", outcome.reason)
    elif pruned:
        tags, reason = trial.tell_pruned()
        session.set_tags(tags)
        session.end("KILLED", reason)
        log.info("%s; run %s ends KILLED", reason, session.run_id)
    else:
        session.end("FINISHED")
    return test
