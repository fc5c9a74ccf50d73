"""The training entry point: `python -m experiments.train [group=option ...] [key=value ...]`.

compose (Hydra) -> validate -> open the MLflow run -> data -> model -> fit -> finish
(evaluate, artifacts, close the run). TensorFlow and MLflow are imported only after the
config is known to be valid, so `--help`, `--cfg job` and a bad value answer in about a
second.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from experiments import claims
from experiments.config.checks import ConfigError, unknown_option, validate
from experiments.config.schema import Config
from experiments.errors import UserError
from experiments.paths import CONF_DIR, PROJECT_DIR
from experiments.sweeps.callback import SWEEP_PARENT_ENV
from experiments.transfer.options import TransferName

# TensorFlow's C++ start-up chatter (CUDA probing on a CPU machine, oneDNN notices) buries
# the run's own log; its errors still reach Python as exceptions. Set it to 0 to see all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
log = logging.getLogger(__name__)


# Exit codes: 1 a store or data error, 2 a config error, 3 a run that finished but whose
# records did not all reach the store (they are kept; `python -m experiments.sync`),
# 130 interrupted (Ctrl-C or SIGTERM), as shells report a SIGINT.
EXIT_USER, EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 1, 2, 3, 130


@dataclass
class Result:
    """A run's final validation accuracy (None if it exploded), and, when some of its
    records did not reach the store, one line saying where they are."""

    val_accuracy: float | None
    incomplete: str | None = None


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
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(cfg: Config, resolved: DictConfig, job: Job) -> Result:
    """One training run, recorded in MLflow. Its result holds the final validation
    accuracy, or None when training stopped on a non-finite value (the run then ends
    FAILED). In a multirun, a config that already FINISHED is skipped and its earlier
    value returned. Runs of one configuration never overlap in a multirun, and no two
    runs share an output folder (experiments.claims)."""
    from experiments.tracking import resume, store

    try:
        client, experiment_id = store.open_experiment(
            cfg.tracking.uri, cfg.tracking.experiment, job.launch_dir
        )
    except store.TrackingError as e:
        raise UserError(str(e)) from None
    digest = resume.config_hash(resolved)
    with ExitStack() as claimed:
        if job.multirun and cfg.tracking.skip_finished:
            # Another process running this configuration (the same sweep started twice):
            # wait for it, then skip what it finished.
            claimed.callback(
                claims.config_claim(client.tracking_uri, experiment_id, digest).release
            )
            earlier = resume.finished_run(client, experiment_id, digest)
            if earlier is not None:
                return Result(resume.skip(client, earlier, digest, job.parent_run_id))
        try:
            job.output_dir, folder = claims.own_output_folder(job.output_dir)
        except OSError as e:
            raise UserError(f"output folder {job.output_dir} cannot be written: {e}") from None
        claimed.callback(folder.release)
        return _record(cfg, resolved, job, client, experiment_id, digest, folder)


def _record(
    cfg: Config,
    resolved: DictConfig,
    job: Job,
    client,
    experiment_id: str,
    digest: str,
    folder: claims.Claim,
) -> Result:
    """The run itself, once its configuration and output folder are this job's."""
    from experiments import data
    from experiments.config.flatten import flatten
    from experiments.config.presets import describe
    from experiments.sweeps import parallelism
    from experiments.tracking import resume, store
    from experiments.tracking.artifacts import write_config_artifacts
    from experiments.tracking.datasets import source_of
    from experiments.tracking.orphans import process_tags
    from experiments.tracking.session import RunSession, run_name
    from experiments.training.memory import (
        OutOfMemory,
        available_bytes,
        check_weights_fit,
        out_of_memory_in_one_line,
    )
    from experiments.transfer.tasks import TransferError

    try:
        session = RunSession.open(
            client,
            experiment_id,
            run_name(job.choices, job.overrides),
            _job_tags(cfg, job, digest, store.git_commit(PROJECT_DIR))
            | {resume.GROUP_TAG: resume.group_hash(resolved)}
            | process_tags(),
            job.output_dir,
            job.parent_run_id,
            description=describe(job.choices, job.overrides),
        )
    except Exception as e:  # noqa: BLE001 - the store refuses the run: one line, whatever the cause
        raise UserError(store.describe_failure(client.tracking_uri, e)) from None
    folder.note(run_id=session.run_id)
    log.info(
        "MLflow run %s in %s (experiment %r)",
        session.run_id,
        client.tracking_uri,
        cfg.tracking.experiment,
    )
    try:
        with session.closing(plain=(data.DataError, TransferError, OutOfMemory)):
            if cfg.tracking.system_metrics:
                session.monitor_system(cfg.tracking.system_metrics_interval)
            session.log_params(flatten(resolved))
            session.log_made(
                lambda out: write_config_artifacts(resolved, job.overrides, out), "config"
            )
            splits = data.load(cfg.data)
            session.log_splits(splits, cfg.data.name.value, source_of(cfg.data, splits.folder))
            check_weights_fit(
                cfg.model.hidden_sizes(), splits.input_shape, splits.num_classes, available_bytes()
            )
            # After the data and the net's size: a file that cannot be read, or a net that
            # cannot fit, fails before TensorFlow's start-up.
            session.set_tags(parallelism.start_tensorflow(job.threads))
            with out_of_memory_in_one_line():
                if cfg.transfer.name is TransferName.study:
                    from experiments.transfer.study import run_study

                    value = run_study(cfg, splits, session)
                else:
                    value = _train(cfg, splits, session)
    except (data.DataError, TransferError, OutOfMemory) as e:
        raise UserError(str(e)) from None
    return Result(value, session.incomplete_reason())


def _job_tags(cfg: Config, job: Job, digest: str, commit: str) -> dict[str, str]:
    from experiments.sweeps.parallelism import placement_tags
    from experiments.tracking.resume import HASH_TAG

    tags = {f"choice.{group}": option for group, option in job.choices.items()}
    return (
        tags
        | {
            "seed": str(cfg.training.seed),
            "git_commit": commit,
            "output_dir": str(job.output_dir),  # on the `host` of tracking.orphans.process_tags
            HASH_TAG: digest,
        }
        | placement_tags()
    )


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
    from experiments.sweeps.pruning import TrialReporter

    trial = TrialReporter.for_this_job(session)  # None unless the job is an Optuna trial
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
    if trial is not None and trial.pruned and not outcome.exploded:
        return trial.finish_pruned(session, model, outcome, diagnostics)
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
        _report(str(e), EXIT_CONFIG, multirun, e)
    from experiments.sweeps import objective, parallelism

    threads = parallelism.share_for_launcher(HydraConfig.get().launcher)
    try:
        result = run(typed, cfg, Job.from_hydra(threads))
    except UserError as e:
        _report(str(e), EXIT_USER, multirun, e)
    if result.incomplete and not multirun:
        print(f"error: {result.incomplete}", file=sys.stderr)
        sys.exit(EXIT_INCOMPLETE)
    return objective.objective(result.val_accuracy)


def cli() -> None:
    """`python -m experiments.train`: Hydra's main, with every way it can end as one line
    and an exit code (see EXIT_*), never a traceback wall for something the user did."""
    # Hydra prints its own composition errors over several lines and exits 1; with
    # HYDRA_FULL_ERROR they reach this function, which says them in one line (exit 2).
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        # SIGTERM anywhere in the command (a run, between a sweep's jobs or a search's
        # trials) ends it as Ctrl-C does.
        with sigterm_as_interrupt():
            main()
    except KeyboardInterrupt as e:
        from experiments.tracking.session import interrupted_reason

        _exit(interrupted_reason(e), EXIT_INTERRUPTED, "KILLED")
    except ConfigError as e:  # a job of a multirun
        _exit(str(e), EXIT_CONFIG)
    except UserError as e:  # a job of a multirun
        _exit(str(e), EXIT_USER)
    except (HydraException, OmegaConfBaseException) as e:
        _exit(_config_error_line(e), EXIT_CONFIG)
    except OSError as e:  # a folder Hydra or a sweeper writes: read-only, full, missing
        _exit(_os_error_line(e), EXIT_USER)
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous


def _exit(message: str, code: int, sweep_status: str = "FAILED") -> None:
    """One line on stderr and the exit code; a sweep of this process ends `sweep_status`
    with the same line as its reason."""
    from experiments.sweeps.callback import end_active_sweep

    parent = end_active_sweep(sweep_status, message)
    where = f"; sweep run {parent} ended {sweep_status}" if parent else ""
    print(f"error: {message}{where}", file=sys.stderr)
    sys.exit(code)


def _os_error_line(error: OSError) -> str:
    """`outputs cannot be written (Read-only file system): ...`: the file, the system's
    reason, what to do."""
    where = error.filename or "a file"
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        return f"{where} cannot be written ({reason}): free space on its disk and run again"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"{where} cannot be written ({reason}): launch from a writable folder, or point "
            "hydra.run.dir (hydra.sweep.dir with -m) at one"
        )
    return f"{where}: {reason}"


def _config_error_line(error: BaseException) -> str:
    """Hydra's and OmegaConf's messages as one line: what failed, then why (the cause's
    first line: "Value 'abc' could not be converted to Integer"); an unknown option as
    the options closest to it, where Hydra's first line only says what it could not find."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        line = unknown_option(error.missing_cfg_file, error.options)
        if line:
            return line
    parts = []
    while error is not None and len(parts) < 2:
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        if first and first not in parts:
            parts.append(first)
        error = error.__cause__
    return ": ".join(parts) or "invalid config"


if __name__ == "__main__":
    cli()
