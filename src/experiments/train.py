"""The training entry point: `python -m experiments.train [group=option ...] [key=value ...]`.

compose (Hydra) -> validate -> open the MLflow run -> data -> model -> fit -> finish
(evaluate, artifacts, close the run). TensorFlow and MLflow are imported only after the
config is known to be valid, so `--help`, `--cfg job` and a bad value answer in about a
second.
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

from experiments.config.checks import ConfigError, validate
from experiments.config.schema import Config
from experiments.paths import CONF_DIR, PROJECT_DIR
from experiments.sweeps.callback import SWEEP_PARENT_ENV
from experiments.transfer.options import TransferName

# TensorFlow's C++ start-up chatter (CUDA probing on a CPU machine, oneDNN notices) buries
# the run's own log; its errors still reach Python as exceptions. Set it to 0 to see all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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
    # TensorFlow threads of this job when several run side by side (sweeps.parallelism).
    threads: int | None = None

    @classmethod
    def from_hydra(cls, threads: int | None = None) -> Job:
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
            threads=threads,
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
    from experiments import data
    from experiments.config.flatten import flatten
    from experiments.sweeps import parallelism
    from experiments.tracking import resume, server, store
    from experiments.tracking.artifacts import write_config_artifacts
    from experiments.tracking.session import RunSession, run_name
    from experiments.transfer.tasks import TransferError

    job.output_dir.mkdir(parents=True, exist_ok=True)
    uri = store.tracking_uri(cfg.tracking.uri, job.launch_dir)
    try:
        server.check_reachable(uri)
    except server.ServerUnreachable as e:
        raise UserError(str(e)) from None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment_id = store.ensure_experiment(
        client, cfg.tracking.experiment, store.artifact_location(uri, job.launch_dir)
    )
    digest = resume.config_hash(resolved)
    if job.multirun and cfg.tracking.skip_finished:
        earlier = resume.finished_run(client, experiment_id, digest)
        if earlier is not None:
            return resume.skip(client, earlier, digest, job.parent_run_id)

    session = RunSession.open(
        client,
        experiment_id,
        run_name(job.choices, job.overrides),
        _job_tags(cfg, job, digest, store.git_commit(PROJECT_DIR)),
        job.output_dir,
        job.parent_run_id,
    )
    log.info("MLflow run %s in %s (experiment %r)", session.run_id, uri, cfg.tracking.experiment)
    session.log_params(flatten(resolved))
    session.log_files(write_config_artifacts(resolved, job.overrides, job.output_dir))
    try:
        with session.closing(plain=(data.DataError, TransferError)), sigterm_as_interrupt():
            splits = data.load(cfg.data)
            # After the data: a file that cannot be read fails before TensorFlow's start-up.
            session.set_tags(parallelism.start_tensorflow(job.threads))
            if cfg.transfer.name is TransferName.study:
                from experiments.transfer.study import run_study

                return run_study(cfg, splits, session)
            return _train(cfg, splits, session)
    except (data.DataError, TransferError) as e:
        raise UserError(str(e)) from None


def _job_tags(cfg: Config, job: Job, digest: str, commit: str) -> dict[str, str]:
    from experiments.tracking.resume import HASH_TAG

    tags = {f"choice.{group}": option for group, option in job.choices.items()}
    return tags | {
        "seed": str(cfg.training.seed),
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        "output_dir": str(job.output_dir),
        "host": platform.node(),  # where output_dir is, when jobs run on several machines
        HASH_TAG: digest,
    }


def _train(cfg: Config, splits, session) -> float | None:
    from experiments.training import loop as training

    model, optimizer, schedule_callbacks = training.compiled_model(cfg, splits)
    session.log_params(
        {f"optimizer_config.{k}": v for k, v in training.optimizer_params(optimizer).items()}
    )
    diagnostics = None
    if cfg.diagnostics.enabled:
        from experiments.diagnostics.run import RunDiagnostics

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
        extra_callbacks=schedule_callbacks + (diagnostics.callbacks if diagnostics else []),
    )
    if diagnostics:
        diagnostics.apply_failure(outcome)
    test = session.finish(
        model,
        outcome,
        splits,
        cfg.training,
        diagnostics=diagnostics,
        save_model=cfg.tracking.log_model,
    )
    if test is None:
        log.error("training stopped: %s; run %s ends FAILED", outcome.reason, session.run_id)
        return None
    val_accuracy = outcome.history["val_accuracy"][-1]
    log.info(
        "val_accuracy %.4f, test_accuracy %.4f (run %s)",
        val_accuracy,
        test["test_accuracy"],
        session.run_id,
    )
    return val_accuracy


def _report(message: str, code: int, job_mode_multirun: bool, error: Exception) -> None:
    """One line on stderr and a non-zero exit; in a multirun, the job fails alone."""
    if job_mode_multirun:
        raise error
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        typed = validate(cfg)
    except ConfigError as e:
        _report(str(e), 2, multirun, e)
    from experiments.sweeps import objective, parallelism

    threads = parallelism.share_for_launcher(HydraConfig.get().launcher)
    try:
        return objective.objective(run(typed, cfg, Job.from_hydra(threads)))
    except UserError as e:
        _report(str(e), 1, multirun, e)


if __name__ == "__main__":
    main()
