"""Reuse of pretrained layers: the notebook's task A / task B study (transfer=study).

Task A is every class but two, relabelled in order; task B is those two as a binary
task with a few training images. Model A learns task A; model B learns task B from
scratch (the baseline); model B on A reuses a copy of model A's hidden stack, first
frozen, then unfrozen. The study is one MLflow run holding three nested runs,
`pretrain_A`, `baseline_B` and `B_on_A`, and the comparison of the two B models; every
one of them goes through the same run lifecycle as any run (`runs.lifecycle`). The
study's own run carries the most severe of its phases' gradient verdicts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import keras
from mlflow.exceptions import MlflowException

from experiments.core import names
from experiments.data import Splits
from experiments.diagnostics.run import RunDiagnostics
from experiments.diagnostics.settings import DiagnosticsConfig
from experiments.diagnostics.verdict import Verdict, combine
from experiments.models.activations import ActivationConfig
from experiments.models.initializers import InitConfig
from experiments.models.nets import build_model
from experiments.models.normalization import NormalizationConfig
from experiments.models.settings import ModelConfig
from experiments.runs import lifecycle
from experiments.tracking.logged_model import model_of_run
from experiments.tracking.orphans import process_tags
from experiments.tracking.session import RunSession
from experiments.tracking.settings import TrackingConfig
from experiments.training import loop as training
from experiments.training.optimizers import ClippingConfig, OptimizerConfig, make_optimizer
from experiments.training.schedules import ScheduleConfig
from experiments.training.settings import TrainingConfig
from experiments.transfer.models import (
    build_b_on_a,
    build_baseline_b,
    count_trainable,
    set_reused_trainable,
    weights_untouched,
)
from experiments.transfer.options import TransferConfig, model_a_source
from experiments.transfer.plots import compare_curves
from experiments.transfer.source import load_model_a
from experiments.transfer.tasks import Tasks, split_tasks

log = logging.getLogger(__name__)

PRETRAIN, BASELINE, B_ON_A = "pretrain_A", "baseline_B", "B_on_A"
DESCRIPTIONS = {
    PRETRAIN: "Model A, trained on task A (every class but the two of task B).",
    BASELINE: "Model B from scratch on task B (two classes, few images): the baseline.",
    B_ON_A: "Model B on a copy of model A's hidden layers: first frozen, then fine-tuned.",
}
_COPIED_TAGS = (
    names.SEED_TAG,
    names.GIT_COMMIT_TAG,
    names.MLFLOW_GIT_COMMIT_TAG,
    names.GROUP_TAG,
)


class StudyConfig(Protocol):
    """The groups the study reads: every one that builds, trains and records a model, as
    the job's config holds them (config.schema.Config)."""

    data: object
    model: ModelConfig
    init: InitConfig
    activation: ActivationConfig
    normalization: NormalizationConfig
    clipping: ClippingConfig
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    training: TrainingConfig
    tracking: TrackingConfig
    transfer: TransferConfig
    diagnostics: DiagnosticsConfig


def error_rate_ratio(accuracy_baseline: float, accuracy_transfer: float) -> float | None:
    """How many times fewer test errors B on A makes than the baseline (the notebook's
    "error rate dropped by a factor of ..."); None when B on A makes none."""
    transfer_errors = 1.0 - accuracy_transfer
    return (1.0 - accuracy_baseline) / transfer_errors if transfer_errors > 0 else None


@dataclass
class Result:
    """One nested run's end: its test metrics (None if training exploded), its curves."""

    test: dict[str, float] | None
    history: dict[str, list[float]]
    outcome: training.Outcome


class Study:
    """The three nested runs of one study, under the study's own run."""

    def __init__(self, cfg: StudyConfig, parent: RunSession, output_dir: Path):
        self.cfg = cfg
        self.parent = parent
        self.output_dir = output_dir
        run = parent.client.get_run(parent.run_id)
        self.experiment_id = run.info.experiment_id
        self.tags = {
            k: v
            for k, v in run.data.tags.items()
            if k.startswith(names.CHOICE_TAG_PREFIX) or k in _COPIED_TAGS
        }
        self._diagnostics: dict[str, RunDiagnostics] = {}  # run id -> its probe, across phases
        self.verdicts: dict[str, Verdict] = {}  # nested run name -> its gradient verdict

    @contextmanager
    def child(self, name: str, data: Splits, task: str) -> Iterator[RunSession]:
        """A nested run training on `data` (task A or B); an error inside ends it FAILED
        (KILLED on interrupt), then rises. Its configuration (`group_hash`) is the
        study's and its phase: seeds of one phase group together, phases apart."""
        tags = self.tags | {names.STUDY_PHASE_TAG: name} | process_tags()
        if names.GROUP_TAG in tags:
            tags[names.GROUP_TAG] = f"{tags[names.GROUP_TAG]}/{name}"
        session = lifecycle.open_run(
            self.parent.client,
            self.experiment_id,
            name,
            tags,
            self.output_dir / name,
            self.parent.run_id,
            description=DESCRIPTIONS[name],
        )
        self.parent.set_tags({f"run_id.{name}": session.run_id})
        with session.closing():
            lifecycle.log_data(session, data, self.cfg.data, f"{self.cfg.data.name.value}-{task}")
            yield session
        if session.verdict is not None:
            self.verdicts[name] = session.verdict

    def fit_phase(
        self,
        model: keras.Model,
        splits: Splits,
        session: RunSession,
        phase: str,
        *,
        epochs: int,
        loss: str,
        learning_rate: float | None = None,
        step_offset: int = 0,
        extra_metrics: dict[str, float] | None = None,
    ) -> training.Outcome:
        """Compile with a fresh optimizer (params logged under `<phase>.`), its rate
        schedule over this phase's epochs, then fit; steps continue from `step_offset`."""
        steps = training.run_steps(len(splits.y_train), self.cfg.training, epochs)
        cfg = self.cfg
        optimizer, schedule_callbacks = training.scheduled_optimizer(
            cfg.optimizer, cfg.clipping, cfg.schedule, steps, learning_rate
        )
        training.compile_model(model, optimizer, self.cfg.training, loss=loss)
        params = {
            f"optimizer_config.{k}": v for k, v in training.optimizer_params(optimizer).items()
        }
        params |= {"epochs": epochs, "trainable_params": count_trainable(model)}
        session.log_params({f"{phase}.{k}": v for k, v in params.items()})

        def log_metrics(values: dict[str, float], step: int) -> None:
            session.log_metrics(values | (extra_metrics or {}), step)

        diagnostics = self._phase_diagnostics(model, splits, session, step_offset)
        outcome = training.fit(
            model,
            splits,
            self.cfg.training,
            log_metrics,
            session.output_dir,
            extra_callbacks=schedule_callbacks + (diagnostics.callbacks if diagnostics else []),
            step_offset=step_offset,
            epochs=epochs,
        )
        if diagnostics:
            diagnostics.apply_failure(outcome)
        return outcome

    def _phase_diagnostics(
        self, model: keras.Model, splits: Splits, session: RunSession, step_offset: int
    ) -> RunDiagnostics | None:
        """The run's gradient diagnostics, as in any run; a later phase of the same run
        goes on probing the same images, its steps continuing from `step_offset`."""
        if not self.cfg.diagnostics.enabled:
            return None
        found = self._diagnostics.get(session.run_id)
        if found is None:
            found = RunDiagnostics.setup(
                model,
                splits.x_val,
                splits.y_val,
                self.cfg.diagnostics,
                self.cfg.activation.name.value,
                self.cfg.training.seed,
                session.log_metrics,
                step_offset=step_offset,
            )
            self._diagnostics[session.run_id] = found
        else:
            found.callback.step_offset = step_offset
        return found

    def finish(
        self,
        session: RunSession,
        model: keras.Model,
        tasks_split: Splits,
        history: dict[str, list[float]],
        outcome: training.Outcome,
        save_model: bool,
    ) -> dict[str, float] | None:
        """Test metrics and artifacts, then the run's end; None if training exploded."""
        return lifecycle.finish(
            session,
            model,
            outcome,
            tasks_split,
            self.cfg.training,
            history=history,
            diagnostics=self._diagnostics.get(session.run_id),
            save_model=save_model,
        )


def _concat(*histories: dict[str, list[float]]) -> dict[str, list[float]]:
    joined: dict[str, list[float]] = {}
    for history in histories:
        for key, values in history.items():
            joined.setdefault(key, []).extend(values)
    return joined


def register_model_a(session: RunSession, name: str, alias: str) -> None:
    """Model A's Logged Model as a new version of registered model `name`, with `alias`
    pointing at it: a later study reuses it as transfer.source=models:/<name>@<alias>."""
    client = session.client
    try:
        model_id = model_of_run(client, session.run_id)
        if model_id is None:
            log.warning("model A was not logged (tracking.log_model=false): not registered")
            return
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description="Model A of the transfer study")
        version = client.create_model_version(
            name, f"models:/{model_id}", run_id=session.run_id, model_id=model_id
        )
        client.set_registered_model_alias(name, alias, version.version)
    except Exception as e:  # noqa: BLE001 - the registry is an extra: the study goes on
        log.warning("model A could not be registered as %s: %s", name, e)
        return
    session.set_tags({"registered_model": f"models:/{name}@{alias}"})
    log.info(
        "model A registered as %s version %s (models:/%s@%s)", name, version.version, name, alias
    )


def _fit_and_finish(
    study: Study,
    session: RunSession,
    model: keras.Model,
    split: Splits,
    phase: str,
    epochs: int,
    loss: str,
) -> Result:
    """One phase from scratch, then the nested run's end."""
    outcome = study.fit_phase(model, split, session, phase, epochs=epochs, loss=loss)
    test = study.finish(
        session, model, split, outcome.history, outcome, study.cfg.tracking.log_model
    )
    return Result(test, outcome.history, outcome)


def pretrain_a(study: Study, tasks: Tasks) -> tuple[keras.Model, str, Result]:
    """Model A, trained on task A or loaded from where transfer.source (or
    transfer.source_run_id) says; also returns the id of the run that trained it."""
    cfg, t = study.cfg, study.cfg.transfer
    with study.child(PRETRAIN, tasks.a, "task_a") as session:
        source = model_a_source(t)
        if source is not None:
            key, value = source
            expected = _model_a(cfg, tasks)
            model_a, holder = load_model_a(
                study.parent.client, value, expected, session.output_dir, f"{key}={value}"
            )
            session.set_tags(
                {"source_run_id": holder, "model_A_source": value, names.MODEL_A_TAG: holder}
            )
            # Loaded uncompiled; compiled here only to be evaluated on task A.
            training.compile_model(
                model_a, make_optimizer(cfg.optimizer, cfg.clipping), cfg.training
            )
            outcome = training.Outcome()
            test = study.finish(session, model_a, tasks.a, {}, outcome, False)
            return model_a, holder, Result(test, {}, outcome)
        training.seed_everything(cfg.training.seed)
        model_a = _model_a(cfg, tasks)
        result = _fit_and_finish(
            study,
            session,
            model_a,
            tasks.a,
            "pretrain",
            cfg.training.epochs,
            "sparse_categorical_crossentropy",
        )
        if t.register_as and result.test is not None:
            register_model_a(session, t.register_as, t.register_alias)
        return model_a, session.run_id, result


def _model_a(cfg: StudyConfig, tasks: Tasks) -> keras.Model:
    """The config's net, with task A's input and classes."""
    return build_model(
        cfg.model,
        cfg.init,
        cfg.activation,
        cfg.normalization,
        tasks.a.input_shape,
        len(tasks.a_classes),
    )


def baseline_b(study: Study, tasks: Tasks) -> Result:
    cfg = study.cfg
    with study.child(BASELINE, tasks.b, "task_b") as session:
        training.seed_everything(cfg.training.seed)
        model = build_baseline_b(
            cfg.model, cfg.init, cfg.activation, cfg.normalization, tasks.b.input_shape
        )
        return _fit_and_finish(
            study,
            session,
            model,
            tasks.b,
            "baseline",
            cfg.transfer.baseline_epochs,
            "binary_crossentropy",
        )


def b_on_a(study: Study, tasks: Tasks, model_a: keras.Model, holder: str) -> Result:
    """The copy of model A's stack with a new output: `freeze_epochs` with the reused
    layers frozen, then `finetune_epochs` with those of `trainable_from` unfrozen, each
    phase recompiled with a fresh optimizer; steps run on across the two."""
    cfg, t = study.cfg, study.cfg.transfer
    with study.child(B_ON_A, tasks.b, "task_b") as session:
        training.seed_everything(cfg.training.seed)
        weights_a = [w.copy() for w in model_a.get_weights()]
        model = build_b_on_a(model_a)
        session.set_tags({names.MODEL_A_TAG: holder, "phase_change_step": t.freeze_epochs})
        phases: list[training.Outcome] = []
        if t.freeze_epochs:
            set_reused_trainable(model, "freeze")
            phases.append(
                study.fit_phase(
                    model,
                    tasks.b,
                    session,
                    "freeze",
                    epochs=t.freeze_epochs,
                    loss="binary_crossentropy",
                    extra_metrics={names.PHASE_METRIC: 0.0},
                )
            )
        if t.finetune_epochs and not (phases and phases[-1].exploded):
            set_reused_trainable(model, t.trainable_from, cfg.model.stage_starts())
            phases.append(
                study.fit_phase(
                    model,
                    tasks.b,
                    session,
                    "finetune",
                    epochs=t.finetune_epochs,
                    loss="binary_crossentropy",
                    learning_rate=t.finetune_learning_rate,
                    step_offset=t.freeze_epochs,
                    extra_metrics={names.PHASE_METRIC: 1.0},
                )
            )
        history = _concat(*(p.history for p in phases))
        test = study.finish(session, model, tasks.b, history, phases[-1], cfg.tracking.log_model)
        # The notebook's warning: B on A built on model A's own layers trains model A
        # too. B on A trains a copy; should that ever regress, the study fails instead
        # of reporting a model A that is no longer the one it logged.
        if not weights_untouched(model_a, weights_a):
            raise RuntimeError("model A's weights changed while B on A trained")
        return Result(test, history, phases[-1])


def run_study(cfg: StudyConfig, splits: Splits, parent: RunSession) -> float | None:
    """The whole study under `parent` (the job's run, which this ends unless an error
    escapes). Returns B on A's final validation accuracy, None if a phase exploded."""
    t = cfg.transfer
    tasks = split_tasks(splits, list(t.task_b_classes), t.train_size_b)
    parent.set_tags({names.TRANSFER_STUDY_TAG: "true"})
    parent.log_params(
        {
            "task_a.classes": tasks.a_classes,
            "task_a.train_size": len(tasks.a.y_train),
            "task_b.train_size": len(tasks.b.y_train),
            "task_b.val_size": len(tasks.b.y_val),
            "task_b.test_size": len(tasks.b.y_test),
        }
    )
    study = Study(cfg, parent, parent.output_dir)

    model_a, holder, pretrain = pretrain_a(study, tasks)
    if pretrain.test is None:
        return _exploded(study, PRETRAIN, pretrain.outcome)
    parent.set_tags({names.MODEL_A_TAG: holder})
    parent.log_metrics({"test_accuracy_A": pretrain.test["test_accuracy"]})
    baseline = baseline_b(study, tasks)
    if baseline.test is None:
        return _exploded(study, BASELINE, baseline.outcome)
    transfer = b_on_a(study, tasks, model_a, holder)
    if transfer.test is None:
        return _exploded(study, B_ON_A, transfer.outcome)

    accuracy_baseline = baseline.test["test_accuracy"]
    accuracy_transfer = transfer.test["test_accuracy"]
    summary = {
        "test_accuracy_baseline": accuracy_baseline,
        "test_accuracy_transfer": accuracy_transfer,
        "test_error_rate_baseline": 1.0 - accuracy_baseline,
        "test_error_rate_transfer": 1.0 - accuracy_transfer,
    }
    ratio = error_rate_ratio(accuracy_baseline, accuracy_transfer)
    if ratio is not None:
        summary["error_rate_ratio"] = ratio
    parent.log_metrics(summary)

    plot = parent.output_dir / "transfer_curves.png"
    parent.log_artifact(
        compare_curves(baseline.history, transfer.history, t.freeze_epochs, plot), "plots"
    )
    lifecycle.end_judged(parent, combine(study.verdicts), "FINISHED")
    log.info(
        "test accuracy on task B: baseline %.4f, B on A %.4f; error rate ratio %s (run %s)",
        accuracy_baseline,
        accuracy_transfer,
        f"{ratio:.2f}" if ratio is not None else "n/a (B on A made no errors)",
        parent.run_id,
    )
    return transfer.history["val_accuracy"][-1]


def _exploded(study: Study, phase: str, outcome: training.Outcome) -> None:
    """A phase stopped on a non-finite value: the study ends FAILED, saying which."""
    parent = study.parent
    parent.set_tags({"failed_phase": phase})
    lifecycle.end_judged(parent, combine(study.verdicts), "FAILED", f"{phase}: {outcome.reason}")
    log.error("%s stopped: %s; study run %s ends FAILED", phase, outcome.reason, parent.run_id)
    return None
