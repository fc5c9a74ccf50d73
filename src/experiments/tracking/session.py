"""One MLflow run from start to end: the single lifecycle of every run the lab records
(a training run or sweep job, a transfer study and each of its nested runs).

    session = RunSession.open(client, experiment_id, name, tags, output_dir, parent)
    with session.closing():           # an error ends it FAILED, Ctrl-C or SIGTERM KILLED
        ...train...
        session.finish(model, outcome, splits, cfg.training, diagnostics=...)

`finish` evaluates on the test split (unless training exploded), writes and logs the
run's artifacts, tags the gradient verdict (`gradient_health`), then ends the run
FINISHED, or FAILED with the failure's tags; a run that ends before `finish` is tagged
`unknown`. From the
moment a run is open, a store that fails costs records, never the training
(`ResilientRecorder`); once training is over, a file that cannot be written (a full
disk) costs that file, never the run's end (`RunSession.made`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from experiments.tracking.recorder import RunRecorder
from experiments.tracking.resilient import ResilientRecorder
from experiments.tracking.spill import spill_folder

DESCRIPTION_TAG = "mlflow.note.content"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
# The run's metrics at its last step that its Logged Model is linked to.
MODEL_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
# Groups whose choices name a run, in this order (a preset's name replaces them).
NAME_GROUPS = ("activation", "init", "normalization", "clipping", "optimizer")
T = TypeVar("T")


class FailureReport(Protocol):
    """What a run's diagnostics add at its end (see experiments.diagnostics.run)."""

    record: Any  # the DiagnosticsRecord that the gradient verdict reads

    def write_artifacts(self, output_dir: Path) -> list[tuple[Path, str | None]]: ...

    def failure_tags(self) -> dict[str, object]: ...


def run_name(choices: dict[str, str], overrides: list[str]) -> str:
    """`<activation>-<init>-<normalization>-<clipping>-<optimizer>` (or the preset's
    name), then the command line's overrides that change what the run computes
    (`model=deep`, `optimizer.learning_rate=0.01`; not `tracking.*` or
    `training.verbose`): readable in the runs table."""
    from experiments.tracking.resume import IGNORED_KEYS

    base = choices.get("experiment") or "-".join(choices[g] for g in NAME_GROUPS if g in choices)

    def shown(override: str) -> bool:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in NAME_GROUPS or key in ("experiment", "hparams_search"):
            return False
        return not any(key == k or key.startswith(k + ".") for k in IGNORED_KEYS)

    extra = [o for o in overrides if shown(o)]
    name = base if not extra else f"{base} " + ",".join(extra)
    return name[:250]


def interrupted_reason(error: KeyboardInterrupt) -> str:
    """Ctrl-C raises a KeyboardInterrupt without a message; SIGTERM's names its signal."""
    return f"interrupted ({str(error) or 'SIGINT'})"


class RunSession(ResilientRecorder):
    """The run's records (see `ResilientRecorder`: none of its calls raises) and its
    lifecycle: open, end once, end on an error, finish."""

    def __init__(self, recorder: RunRecorder, output_dir: Path):
        super().__init__(recorder, output_dir)
        self.ended = False
        self._system_metrics = None
        self.verdict = None  # the gradient verdict (experiments.diagnostics.verdict)

    @classmethod
    def open(
        cls,
        client,
        experiment_id: str,
        name: str,
        tags: dict[str, Any],
        output_dir: Path,
        parent_run_id: str | None = None,
        description: str | None = None,
    ) -> RunSession:
        """The run, with what MLflow's own context resolution says of this process (user,
        source name and type, git commit), then `tags`, and `description` as its note."""
        from mlflow.tracking.context.registry import resolve_tags

        output_dir.mkdir(parents=True, exist_ok=True)
        all_tags = resolve_tags({k: str(v) for k, v in tags.items()})
        # Where MLflow finds no repository (a Ray worker, a job not started from a file of
        # the checkout), the lab's own reading of the checkout's commit stands in.
        if GIT_COMMIT_TAG not in all_tags and "git_commit" in tags:
            all_tags[GIT_COMMIT_TAG] = str(tags["git_commit"])
        if description:
            all_tags[DESCRIPTION_TAG] = description
        return cls(
            RunRecorder.start(client, experiment_id, name, all_tags, parent_run_id), output_dir
        )

    def log_files(self, written: Iterable[tuple[Path, str | None]]) -> None:
        for path, folder in written:
            self.log_artifact(path, folder)

    def log_splits(self, splits, name: str, source: Any) -> None:
        """The run's training, validation and test data as its dataset inputs."""
        from experiments.tracking.datasets import dataset_records

        self.log_datasets(dataset_records(splits, name, source))

    def log_trained_model(self, model, example, step: int) -> None:
        """The model saved in the output folder (or, on a full disk, the spill folder),
        then as the run's Logged Model."""
        from experiments.tracking.logged_model import save

        folder = self.made(lambda base: save(model, example, base / "model", self.run_id), "model")
        if folder is not None:
            self.log_model(folder, step, list(MODEL_METRICS))

    def log_made(self, make: Callable[[Path], list[tuple[Path, str | None]]], what: str) -> None:
        """Files `make` writes in a folder, logged (see `made`)."""
        written = self.made(make, what)
        if written is not None:
            self.log_files(written)

    def made(self, make: Callable[[Path], T], what: str) -> T | None:
        """`make(folder)` in the output folder; if that folder refuses (a full disk, a
        read-only folder), what it left there is removed and it is made in the run's
        spill folder instead; if that fails too, `what` is named as unwritten and None
        returned. Training is over by now: a file that cannot be written costs that
        file, never the run's end."""
        try:
            return _leaving_nothing_on_failure(make, self.output_dir)
        except OSError as e:
            self.note_write_failure(what, e, self.output_dir)
        try:
            made = _leaving_nothing_on_failure(make, self.spill_folder())
            self.spilled.append(what)
            return made
        except OSError as e:
            self.note_write_failure(what, e, spill_folder(self.run_id))
        self.note_unwritten(what)
        return None

    def monitor_system(self, interval: float) -> None:
        """CPU, memory, disk and network every `interval` seconds as `system/*` metrics,
        by MLflow's own sampler (a thread of this process) until the run ends."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._system_metrics = SystemMetricsMonitor(
            self.run_id, sampling_interval=interval, tracking_uri=self.client.tracking_uri
        )
        self._system_metrics.start()

    def end(self, status: str, reason: str | None = None) -> None:
        """Ends the run once; a later call (an error after `finish`) changes nothing."""
        if not self.ended:
            self.ended = True
            if self._system_metrics is not None:
                self._system_metrics.finish()
            if self.verdict is None:  # ended before `finish`: an error, an interrupt
                from experiments.diagnostics.verdict import unknown

                self.set_verdict(unknown(f"the run ended {status} before it was judged"))
            super().end(status, reason)

    def set_verdict(self, verdict) -> None:
        """The `gradient_health*` tags, set on every run before it ends."""
        self.verdict = verdict
        self.set_tags(verdict.tags())

    @contextmanager
    def closing(self, plain: tuple[type[BaseException], ...] = ()) -> Iterator[RunSession]:
        """Ends the run KILLED on Ctrl-C or SIGTERM and FAILED on an error, then lets the
        error go on. The reason names the error's type, but for the `plain` types, whose
        messages say it all (a data file that cannot be read)."""
        try:
            yield self
        except KeyboardInterrupt as e:
            self.end("KILLED", interrupted_reason(e))
            raise
        except plain as e:
            self.end("FAILED", str(e)[:5000])
            raise
        except BaseException as e:
            self.end("FAILED", f"{type(e).__name__}: {e}"[:5000])
            raise

    def finish(
        self,
        model,
        outcome,
        data,
        training,
        *,
        history: dict[str, list[float]] | None = None,
        diagnostics: FailureReport | None = None,
        save_model: bool = True,
    ) -> dict[str, float] | None:
        """Test metrics (None if training exploded), artifacts, then the run's end.
        `data` holds the test split; `history` defaults to the outcome's own."""
        from experiments.tracking.artifacts import write_model_artifacts
        from experiments.training.loop import evaluate

        history = outcome.history if history is None else history
        last_step = max(len(history.get("loss", [])) - 1, 0)
        test = None
        if not outcome.exploded:
            test = evaluate(model, data.x_test, data.y_test, training)
            self.log_metrics(test, step=last_step)
        if diagnostics is not None:
            self.log_made(diagnostics.write_artifacts, "diagnostics files")
        self.log_made(
            lambda folder: write_model_artifacts(model, history, folder), "model summary and plots"
        )
        if save_model and not outcome.exploded:
            self.log_trained_model(model, data.x_test, last_step)
        from experiments.diagnostics.verdict import judge

        record = diagnostics.record if diagnostics is not None else None
        self.set_verdict(judge(record, outcome.failed_epoch, outcome.reason))
        if outcome.exploded:
            failure_tags = diagnostics.failure_tags() if diagnostics is not None else {}
            self.set_tags({"failed_epoch": outcome.failed_epoch, **failure_tags})
            self.end("FAILED", outcome.reason)
        else:
            self.end("FINISHED")
        return test


def _leaving_nothing_on_failure(make: Callable[[Path], T], folder: Path) -> T:
    """`make(folder)`; if it raises OSError, the files and folders it added go (a file
    cut short by a full disk is no artifact, and removing it gives the space back)."""
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.rglob("*"))
    try:
        return make(folder)
    except OSError:
        for path in sorted(set(folder.rglob("*")) - before, reverse=True):  # deepest first
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
