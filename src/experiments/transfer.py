"""Reuse of pretrained layers: the notebook's task A / task B study (transfer=study).

Task A is every class but two, relabelled in order; task B is those two as a binary
task with a few training images. Model A learns task A; model B learns task B from
scratch (the baseline); model B on A reuses a copy of model A's hidden stack, first
frozen, then unfrozen. The study is one MLflow run holding three nested runs,
`pretrain_A`, `baseline_B` and `B_on_A`, and the comparison of the two B models.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from experiments import diagnostics as diagnostics_module
from experiments import training
from experiments.config import Config, first_unfrozen_block
from experiments.data import Splits
from experiments.diagnostics import Diagnostics
from experiments.models import build_model, hidden_stack
from experiments.resilient_recorder import ResilientRecorder
from experiments.step_monitor import MonitoredSequential
from experiments.tracking import RunRecorder
from experiments.transfer_tasks import STUDY_TAG, Tasks, split_tasks

log = logging.getLogger(__name__)

PRETRAIN, BASELINE, B_ON_A = "pretrain_A", "baseline_B", "B_on_A"
# Tag on the study run naming the run whose model/model.keras is model A, so that
# transfer.source_run_id may name the study run itself.
MODEL_A_TAG = "model_A_run_id"
# Per-epoch metric of B_on_A: 0 while the reused layers are frozen, 1 once unfrozen.
PHASE_METRIC = "reused_layers_trainable"
_COPIED_TAGS = ("seed", "git_commit", "mlflow.source.git.commit")


def build_model_a(cfg: Config, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    return build_model(
        cfg.model, cfg.init, cfg.activation, cfg.normalization, input_shape, num_classes
    )


def binary_output() -> keras.layers.Layer:
    return keras.layers.Dense(1, activation="sigmoid", name="output")


def build_baseline_b(cfg: Config, input_shape: tuple[int, ...]) -> keras.Model:
    """Model A's hidden stack, from scratch, under one sigmoid unit."""
    stack = hidden_stack(cfg.model.hidden_sizes(), cfg.init, cfg.activation, cfg.normalization)
    return MonitoredSequential(
        [
            keras.Input(shape=input_shape, name="image"),
            keras.layers.Flatten(name="flatten"),
            *stack,
            binary_output(),
        ],
        name="baseline_b",
    )


def build_b_on_a(model_a: keras.Model) -> keras.Model:
    """A copy of model A's layers below its output, under one sigmoid unit. The copy
    matters: stacking model A's own layers would train model A along with it."""
    clone = keras.models.clone_model(model_a)
    clone.set_weights(model_a.get_weights())
    return MonitoredSequential(
        [
            keras.Input(shape=model_a.input_shape[1:], name="image"),
            *clone.layers[:-1],
            binary_output(),
        ],
        name="b_on_a",
    )


def _block_of(layer_name: str) -> int | None:
    match = re.match(r"hidden_(\d+)", layer_name)
    return int(match.group(1)) if match else None


def set_reused_trainable(model: keras.Model, spec: str) -> None:
    """Every layer below the output: `freeze` freezes them all; otherwise `spec` is
    transfer.trainable_from (all | none | hidden_NN: that block and the ones above)."""
    reused = model.layers[:-1]
    n_blocks = max((_block_of(layer.name) or 0) for layer in reused)
    first = None if spec == "freeze" else first_unfrozen_block(spec, n_blocks)
    for layer in reused:
        block = _block_of(layer.name)
        layer.trainable = spec == "all" or (
            first is not None and block is not None and block >= first
        )


def count_trainable(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def error_rate_ratio(accuracy_baseline: float, accuracy_transfer: float) -> float | None:
    """How many times fewer test errors B on A makes than the baseline (the notebook's
    "error rate dropped by a factor of ..."); None when B on A makes none."""
    transfer_errors = 1.0 - accuracy_transfer
    return (1.0 - accuracy_baseline) / transfer_errors if transfer_errors > 0 else None


class Study:
    """The three nested runs of one study, under the study's own run."""

    def __init__(self, cfg: Config, parent: RunRecorder, output_dir: Path):
        self.cfg = cfg
        self.parent = parent
        self.output_dir = output_dir
        run = parent.client.get_run(parent.run_id)
        self.experiment_id = run.info.experiment_id
        self.tags = {
            k: v for k, v in run.data.tags.items() if k.startswith("choice.") or k in _COPIED_TAGS
        }
        self._folders: dict[str, Path] = {}  # run id -> that run's local output folder
        self._diagnostics: dict[str, Diagnostics] = {}  # run id -> its probe, across phases

    @contextmanager
    def child(self, name: str) -> Iterator[RunRecorder]:
        """A nested run; an error inside ends it FAILED (KILLED on interrupt), then rises."""
        folder = self.output_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        # Like the study's own run: a store that fails mid-study costs records, not training.
        recorder = ResilientRecorder(
            RunRecorder.start(
                self.parent.client,
                self.experiment_id,
                name,
                self.tags | {"study_phase": name},
                self.parent.run_id,
            ),
            folder,
        )
        self.parent.set_tags({f"run_id.{name}": recorder.run_id})
        self._folders[recorder.run_id] = folder
        try:
            yield recorder
        except KeyboardInterrupt as e:
            recorder.end("KILLED", f"interrupted ({e or 'SIGINT'})")
            raise
        except BaseException as e:
            recorder.end("FAILED", f"{type(e).__name__}: {e}"[:5000])
            raise

    def fit_phase(
        self,
        model: keras.Model,
        splits: Splits,
        recorder: RunRecorder,
        phase: str,
        *,
        epochs: int,
        loss: str,
        learning_rate: float | None = None,
        step_offset: int = 0,
        extra_metrics: dict[str, float] | None = None,
    ) -> training.Outcome:
        """Compile with a fresh optimizer (params logged under `<phase>.`), then fit;
        steps continue from `step_offset`."""
        opt_cfg = self.cfg.optimizer
        if learning_rate is not None:
            opt_cfg = dataclasses.replace(opt_cfg, learning_rate=learning_rate)
        optimizer = training.make_optimizer(opt_cfg, self.cfg.clipping)
        training.compile_model(model, optimizer, self.cfg.training, loss=loss)
        params = {
            f"optimizer_config.{k}": v for k, v in training.optimizer_params(optimizer).items()
        }
        params |= {"epochs": epochs, "trainable_params": count_trainable(model)}
        recorder.log_params({f"{phase}.{k}": v for k, v in params.items()})

        def log_metrics(values: dict[str, float], step: int) -> None:
            recorder.log_metrics(values | (extra_metrics or {}), step)

        diagnostics = self._phase_diagnostics(model, splits, recorder, step_offset)
        outcome = training.fit(
            model,
            splits,
            self.cfg.training,
            log_metrics,
            self._folders[recorder.run_id],
            extra_callbacks=diagnostics.callbacks if diagnostics else None,
            step_offset=step_offset,
            epochs=epochs,
        )
        if diagnostics:
            diagnostics.apply_failure(outcome)
        return outcome

    def _phase_diagnostics(
        self, model: keras.Model, splits: Splits, recorder: RunRecorder, step_offset: int
    ) -> Diagnostics | None:
        """The run's gradient diagnostics, as in any run; a later phase of the same run
        goes on probing the same images, its steps continuing from `step_offset`."""
        if not self.cfg.diagnostics.enabled:
            return None
        found = self._diagnostics.get(recorder.run_id)
        if found is None:
            found = diagnostics_module.setup(
                model,
                splits.x_val,
                splits.y_val,
                self.cfg.diagnostics,
                self.cfg.activation.name.value,
                self.cfg.training.seed,
                recorder.log_metrics,
                step_offset=step_offset,
            )
            self._diagnostics[recorder.run_id] = found
        else:
            found.callback.step_offset = step_offset
        return found

    def finish(
        self,
        recorder: RunRecorder,
        model: keras.Model,
        splits: Splits,
        history: dict[str, list[float]],
        outcome: training.Outcome,
        save_model: bool,
    ) -> dict[str, float] | None:
        """Test metrics and artifacts, then the run's end; None if training exploded."""
        from experiments.artifacts import write_model_artifacts

        test = None
        if not outcome.exploded:
            test = training.evaluate(model, splits.x_test, splits.y_test, self.cfg.training)
            recorder.log_metrics(test, step=max(len(history.get("loss", [])) - 1, 0))
        folder = self._folders[recorder.run_id]
        diagnostics = self._diagnostics.get(recorder.run_id)
        written = diagnostics.write_artifacts(folder) if diagnostics else []
        written += write_model_artifacts(
            model, history, folder, save_model=save_model and not outcome.exploded
        )
        for path, artifact_folder in written:
            recorder.log_artifact(path, artifact_folder)
        if outcome.exploded:
            failure_tags = diagnostics.failure_tags() if diagnostics else {}
            recorder.set_tags({"failed_epoch": outcome.failed_epoch, **failure_tags})
            recorder.end("FAILED", outcome.reason)
        else:
            recorder.end("FINISHED")
        return test


def _concat(*histories: dict[str, list[float]]) -> dict[str, list[float]]:
    joined: dict[str, list[float]] = {}
    for history in histories:
        for key, values in history.items():
            joined.setdefault(key, []).extend(values)
    return joined


@dataclass
class Result:
    """One nested run's end: its test metrics (None if training exploded), its curves."""

    test: dict[str, float] | None
    history: dict[str, list[float]]
    outcome: training.Outcome


def pretrain_a(study: Study, tasks: Tasks) -> tuple[keras.Model, str, Result]:
    """Model A, trained on task A or loaded from transfer.source_run_id; also returns
    the id of the run that holds it as model/model.keras."""
    cfg, t = study.cfg, study.cfg.transfer
    with study.child(PRETRAIN) as rec:
        if t.source_run_id:
            from experiments.transfer_source import load_model_a

            expected = build_model_a(cfg, tasks.a.input_shape, len(tasks.a_classes))
            folder = study.output_dir / PRETRAIN
            model_a, holder = load_model_a(study.parent.client, t.source_run_id, expected, folder)
            rec.set_tags({"source_run_id": t.source_run_id, MODEL_A_TAG: holder})
            # Loaded uncompiled; compiled here only to be evaluated on task A.
            optimizer = training.make_optimizer(cfg.optimizer, cfg.clipping)
            training.compile_model(model_a, optimizer, cfg.training)
            outcome = training.Outcome()
            return (
                model_a,
                holder,
                Result(study.finish(rec, model_a, tasks.a, {}, outcome, False), {}, outcome),
            )
        training.seed_everything(cfg.training.seed)
        model_a = build_model_a(cfg, tasks.a.input_shape, len(tasks.a_classes))
        outcome = study.fit_phase(
            model_a,
            tasks.a,
            rec,
            "pretrain",
            epochs=cfg.training.epochs,
            loss="sparse_categorical_crossentropy",
        )
        test = study.finish(rec, model_a, tasks.a, outcome.history, outcome, cfg.tracking.log_model)
        return model_a, rec.run_id, Result(test, outcome.history, outcome)


def baseline_b(study: Study, tasks: Tasks) -> Result:
    cfg = study.cfg
    with study.child(BASELINE) as rec:
        training.seed_everything(cfg.training.seed)
        model = build_baseline_b(cfg, tasks.b.input_shape)
        outcome = study.fit_phase(
            model,
            tasks.b,
            rec,
            "baseline",
            epochs=cfg.transfer.baseline_epochs,
            loss="binary_crossentropy",
        )
        test = study.finish(rec, model, tasks.b, outcome.history, outcome, cfg.tracking.log_model)
        return Result(test, outcome.history, outcome)


def b_on_a(study: Study, tasks: Tasks, model_a: keras.Model, holder: str) -> Result:
    """The copy of model A's stack with a new output: `freeze_epochs` with the reused
    layers frozen, then `finetune_epochs` with those of `trainable_from` unfrozen, each
    phase recompiled with a fresh optimizer; steps run on across the two."""
    cfg, t = study.cfg, study.cfg.transfer
    with study.child(B_ON_A) as rec:
        training.seed_everything(cfg.training.seed)
        weights_a = [w.copy() for w in model_a.get_weights()]
        model = build_b_on_a(model_a)
        rec.set_tags({MODEL_A_TAG: holder, "phase_change_step": t.freeze_epochs})
        phases: list[training.Outcome] = []
        if t.freeze_epochs:
            set_reused_trainable(model, "freeze")
            phases.append(
                study.fit_phase(
                    model,
                    tasks.b,
                    rec,
                    "freeze",
                    epochs=t.freeze_epochs,
                    loss="binary_crossentropy",
                    extra_metrics={PHASE_METRIC: 0.0},
                )
            )
        if t.finetune_epochs and not (phases and phases[-1].exploded):
            set_reused_trainable(model, t.trainable_from)
            phases.append(
                study.fit_phase(
                    model,
                    tasks.b,
                    rec,
                    "finetune",
                    epochs=t.finetune_epochs,
                    loss="binary_crossentropy",
                    learning_rate=t.finetune_learning_rate,
                    step_offset=t.freeze_epochs,
                    extra_metrics={PHASE_METRIC: 1.0},
                )
            )
        history = _concat(*(p.history for p in phases))
        test = study.finish(rec, model, tasks.b, history, phases[-1], cfg.tracking.log_model)
        _check_untouched(model_a, weights_a)
        return Result(test, history, phases[-1])


def run_study(cfg: Config, splits: Splits, parent: RunRecorder, output_dir: Path) -> float | None:
    """The whole study under `parent` (the job's run, which this ends unless an error
    escapes). Returns B on A's final validation accuracy, None if a phase exploded."""
    t = cfg.transfer
    tasks = split_tasks(splits, list(t.task_b_classes), t.train_size_b)
    parent.set_tags({STUDY_TAG: "true"})
    parent.log_params(
        {
            "task_a.classes": tasks.a_classes,
            "task_a.train_size": len(tasks.a.y_train),
            "task_b.train_size": len(tasks.b.y_train),
            "task_b.val_size": len(tasks.b.y_val),
            "task_b.test_size": len(tasks.b.y_test),
        }
    )
    study = Study(cfg, parent, output_dir)

    model_a, holder, pretrain = pretrain_a(study, tasks)
    if pretrain.test is None:
        return _exploded(parent, PRETRAIN, pretrain.outcome)
    parent.set_tags({MODEL_A_TAG: holder})
    parent.log_metrics({"test_accuracy_A": pretrain.test["test_accuracy"]})
    baseline = baseline_b(study, tasks)
    if baseline.test is None:
        return _exploded(parent, BASELINE, baseline.outcome)
    transfer = b_on_a(study, tasks, model_a, holder)
    if transfer.test is None:
        return _exploded(parent, B_ON_A, transfer.outcome)

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
    from experiments.transfer_plots import compare_curves

    plot = output_dir / "transfer_curves.png"
    parent.log_artifact(
        compare_curves(baseline.history, transfer.history, t.freeze_epochs, plot), "plots"
    )
    parent.end("FINISHED")
    log.info(
        "test accuracy on task B: baseline %.4f, B on A %.4f; error rate ratio %s (run %s)",
        accuracy_baseline,
        accuracy_transfer,
        f"{ratio:.2f}" if ratio is not None else "n/a (B on A made no errors)",
        parent.run_id,
    )
    return transfer.history["val_accuracy"][-1]


def _check_untouched(model_a: keras.Model, before: list[np.ndarray]) -> None:
    """The notebook's warning: B on A built on model A's own layers trains model A too.
    B on A trains a copy; should that ever regress, the study fails instead of reporting
    a model A that is no longer the one it logged."""
    if not all(np.array_equal(a, b) for a, b in zip(before, model_a.get_weights(), strict=True)):
        raise RuntimeError("model A's weights changed while B on A trained")


def _exploded(parent: RunRecorder, phase: str, outcome: training.Outcome) -> None:
    """A phase stopped on a non-finite value: the study ends FAILED, saying which."""
    parent.set_tags({"failed_phase": phase})
    parent.end("FAILED", f"{phase}: {outcome.reason}")
    log.error("%s stopped: %s; study run %s ends FAILED", phase, outcome.reason, parent.run_id)
    return None
