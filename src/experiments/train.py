"""The training entry point: `python -m experiments.train [group=option ...] [key=value ...]`.

compose (Hydra) -> validate -> open the MLflow run -> data -> model -> fit -> evaluate
-> artifacts -> close the run. TensorFlow and MLflow are imported only after the config
is known to be valid, so `--help`, `--cfg job` and a bad value answer in about a second.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments.config import Config, ConfigError, TransferName, validate

# TensorFlow's C++ start-up chatter (CUDA probing on a CPU machine, oneDNN notices) buries
# the run's own log; its errors still reach Python as exceptions. Set it to 0 to see all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
PROJECT_DIR = Path(__file__).resolve().parents[2]
CONF_DIR = str(PROJECT_DIR / "conf")
SWEEP_PARENT_ENV = "GRADLAB_SWEEP_PARENT_RUN_ID"
log = logging.getLogger(__name__)


class UserError(RuntimeError):
    """An error the user can fix (data, store); reported as one line, not a traceback."""


@dataclass
class Job:
    """Where and how this job runs, read from Hydra (or given directly by tests)."""

    launch_dir: Path
    output_dir: Path
    choices: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    parent_run_id: str | None = None

    @classmethod
    def from_hydra(cls) -> Job:
        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        return cls(
            launch_dir=Path(hc.runtime.cwd),
            output_dir=Path(hc.runtime.output_dir),
            choices={
                k: str(v)
                for k, v in hc.runtime.choices.items()
                if not k.startswith("hydra/") and v is not None
            },
            overrides=list(hc.overrides.task),
            multirun=multirun,
            parent_run_id=os.environ.get(SWEEP_PARENT_ENV) if multirun else None,
        )


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's stop) unwinds like Ctrl-C, so the run can end KILLED."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(cfg: Config, resolved: DictConfig, job: Job) -> float | None:
    """One training run, recorded in MLflow. Returns the final validation accuracy, or
    None when training stopped on a non-finite value (the run then ends FAILED). In a
    multirun, a config that already FINISHED is skipped and its earlier value returned."""
    from experiments import data as data_module
    from experiments import parallelism, resume, tracking, tracking_server
    from experiments.artifacts import write_config_artifacts, write_model_artifacts
    from experiments.resilient_recorder import ResilientRecorder
    from experiments.transfer_tasks import TransferError

    job.output_dir.mkdir(parents=True, exist_ok=True)
    uri = tracking.tracking_uri(cfg.tracking.uri, job.launch_dir)
    try:
        tracking_server.check_reachable(uri)
    except tracking_server.ServerUnreachable as e:
        raise UserError(str(e)) from None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment_id = tracking.ensure_experiment(
        client, cfg.tracking.experiment, tracking.artifact_location(uri, job.launch_dir)
    )
    digest = resume.config_hash(resolved)
    if job.multirun and cfg.tracking.skip_finished:
        earlier = resume.finished_run(client, experiment_id, digest)
        if earlier is not None:
            return resume.skip(client, earlier, digest, job.parent_run_id)
    commit = tracking.git_commit(PROJECT_DIR)
    tags = {f"choice.{group}": option for group, option in job.choices.items()}
    tags |= {
        "seed": str(cfg.training.seed),
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        "output_dir": str(job.output_dir),
        "host": platform.node(),  # where output_dir is, when jobs run on several machines
        resume.HASH_TAG: digest,
    }
    recorder = tracking.RunRecorder.start(
        client,
        experiment_id,
        tracking.run_name(job.choices, job.overrides),
        tags,
        job.parent_run_id,
    )
    # From here on, a store that fails costs records, never the training.
    recorder = ResilientRecorder(recorder, job.output_dir)
    log.info("MLflow run %s in %s (experiment %r)", recorder.run_id, uri, cfg.tracking.experiment)
    recorder.log_params(tracking.flatten(resolved))
    for path, folder in write_config_artifacts(resolved, job.overrides, job.output_dir):
        recorder.log_artifact(path, folder)

    try:
        with sigterm_as_interrupt():
            splits = data_module.load(cfg.data)
            # After the data: a file that cannot be read fails before TensorFlow's start-up.
            recorder.set_tags(parallelism.thread_tags())
            if cfg.transfer.name is TransferName.study:
                from experiments.transfer import run_study

                return run_study(cfg, splits, recorder, job.output_dir)
            return _train(cfg, splits, recorder, job, write_model_artifacts)
    except KeyboardInterrupt as e:
        recorder.end("KILLED", f"interrupted ({e or 'SIGINT'})")
        raise
    except (data_module.DataError, TransferError) as e:
        recorder.end("FAILED", str(e))
        raise UserError(str(e)) from None
    except BaseException as e:
        recorder.end("FAILED", f"{type(e).__name__}: {e}"[:5000])
        raise


def _train(cfg: Config, splits, recorder, job: Job, write_model_artifacts) -> float | None:
    from experiments import training

    model, optimizer = training.compiled_model(cfg, splits)
    recorder.log_params(
        {f"optimizer_config.{k}": v for k, v in training.optimizer_params(optimizer).items()}
    )

    diagnostics = None
    if cfg.diagnostics.enabled:
        from experiments import diagnostics as diagnostics_module

        diagnostics = diagnostics_module.setup(
            model,
            splits.x_val,
            splits.y_val,
            cfg.diagnostics,
            cfg.activation.name.value,
            cfg.training.seed,
            recorder.log_metrics,
        )
    outcome = training.fit(
        model,
        splits,
        cfg.training,
        recorder.log_metrics,
        job.output_dir,
        extra_callbacks=diagnostics.callbacks if diagnostics else None,
    )
    if diagnostics:
        diagnostics.apply_failure(outcome)
        for path, folder in diagnostics.write_artifacts(job.output_dir):
            recorder.log_artifact(path, folder)
    exploded = outcome.exploded
    if not exploded:
        test = training.evaluate(model, splits.x_test, splits.y_test, cfg.training)
        recorder.log_metrics(test, step=outcome.epochs_run - 1)
    for path, folder in write_model_artifacts(
        model, outcome.history, job.output_dir, save_model=cfg.tracking.log_model and not exploded
    ):
        recorder.log_artifact(path, folder)

    if exploded:
        failure_tags = diagnostics.failure_tags() if diagnostics else {}
        recorder.set_tags({"failed_epoch": outcome.failed_epoch, **failure_tags})
        recorder.end("FAILED", outcome.reason)
        log.error("training stopped: %s; run %s ends FAILED", outcome.reason, recorder.run_id)
        return None
    recorder.end("FINISHED")
    val_accuracy = outcome.history["val_accuracy"][-1]
    log.info(
        "val_accuracy %.4f, test_accuracy %.4f (run %s)",
        val_accuracy,
        test["test_accuracy"],
        recorder.run_id,
    )
    return val_accuracy


def _report(message: str, code: int, job_mode_multirun: bool, error: Exception) -> None:
    """One line on stderr and a non-zero exit; in a multirun, the job fails alone."""
    if job_mode_multirun:
        raise error
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        typed = validate(cfg)
    except ConfigError as e:
        _report(str(e), 2, multirun, e)
    from experiments import parallelism, search

    parallelism.limit_for_launcher(HydraConfig.get().launcher)
    try:
        return search.objective(run(typed, cfg, Job.from_hydra()))
    except UserError as e:
        _report(str(e), 1, multirun, e)


if __name__ == "__main__":
    main()
