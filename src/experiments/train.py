"""The training entry point: `python -m experiments.train [group=option ...] [key=value ...]`.

compose (Hydra) -> validate -> the job (runs.job) -> its run (runs.execute: the store,
data, model, fit, then runs.lifecycle: evaluate, artifacts, verdict, end). TensorFlow and
MLflow are imported only after the config is known to be valid, so `--help`,
`--cfg job` and a bad value answer in about a second. Every way the command can end is
one line and an exit code.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from experiments.config.checks import ConfigError, unknown_option, validate
from experiments.core import stopping
from experiments.errors import UserError
from experiments.paths import CONF_DIR

# TensorFlow's C++ start-up chatter (CUDA probing on a CPU machine, oneDNN notices) buries
# the run's own log; its errors still reach Python as exceptions. Set it to 0 to see all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
log = logging.getLogger(__name__)


# Exit codes: 1 a store or data error, 2 a config error, 3 a run that finished but whose
# records did not all reach the store (they are kept; `python -m experiments.sync`),
# 130 interrupted (Ctrl-C or SIGTERM), as shells report a SIGINT.
EXIT_USER, EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 1, 2, 3, 130


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


def _report(message: str, code: int, job_mode_multirun: bool, error: Exception) -> None:
    """One line on stderr and a non-zero exit; in a multirun, the job fails alone."""
    if job_mode_multirun:
        raise error
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | dict[str, float | None] | None:
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    # Joblib and the Optuna trial's names: a command that composes no job (`--help`,
    # `--cfg job`) never loads them.
    from experiments.runs.job import Job
    from experiments.sweeps import progress

    job = Job.from_hydra()
    result = None
    try:
        result = _run(cfg, job, multirun)
    finally:
        if multirun:  # a job that failed counts as ended too
            progress.job_ended(job.ended(result))
    if result.incomplete and not multirun:
        print(f"error: {result.incomplete}", file=sys.stderr)
        sys.exit(EXIT_INCOMPLETE)
    return job.returned(result)


def _run(cfg: DictConfig, job, multirun: bool):
    try:
        typed = validate(cfg)
    except ConfigError as e:
        _report(str(e), EXIT_CONFIG, multirun, e)
    # The run's modules (MLflow among them) only once the config is valid: `--help`,
    # `--cfg job` and a bad value answer without them.
    from experiments.runs import execute

    try:
        return execute.run(typed, cfg, job)
    except UserError as e:
        _report(str(e), EXIT_USER, multirun, e)


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
        _exit(stopping.interrupted_reason(e), EXIT_INTERRUPTED, "KILLED")
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
    ended = stopping.stop(sweep_status, message)
    where = "".join(f"; sweep run {run_id} ended {sweep_status}" for run_id in ended)
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
