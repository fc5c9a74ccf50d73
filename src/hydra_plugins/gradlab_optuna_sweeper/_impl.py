"""The search: an Optuna study in a database, asked for trials in batches of `n_jobs`
that Hydra's configured launcher runs (basic, joblib, Ray), told each job's value.

The loop follows the upstream hydra-optuna-sweeper (ask, launch the batch, tell), with
what a persistent study needs on top:
- `n_trials` is the total the study should reach, so a run started again continues it
  and several workers (processes, machines) on one study share the work;
- each worker keeps a heartbeat on its running trials (Optuna beats only inside
  `study.optimize`, which an ask-and-tell loop does not use); a trial whose worker
  died is failed and retried with the same parameters by whoever looks next, also one
  that never got a beat (`_storage.StudyStorage`), so no wait is without an end;
- a job learns its trial through its environment (`job.JobTrial`), reports per-epoch
  values and may end its trial PRUNED itself; the sweeper then leaves that trial as it is.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, read_write
from optuna.trial import TrialState

from experiments.core import names

from . import _space
from ._figures import write_figures
from ._storage import (
    SQLITE_LOCK_WAIT_S,
    open_storage,
    quiet,
    reason,
    shown,
    storage_errors,
)
from .job import STORAGE_ENV, STUDY_ENV, TRIAL_ENV, env_override

log = logging.getLogger(__name__)

DEFAULT_DB = "optuna.db"
RESULTS_FILE = "optimization_results.yaml"


class SweeperConfigError(HydraException, ValueError):
    """A `hydra.sweeper` setting out of range; the entry point says it in one line (exit 2),
    as Hydra's own config errors."""


def _direction(direction: Any) -> str:
    return getattr(direction, "name", None) or str(direction)


def counted(trials: Sequence[optuna.trial.FrozenTrial]) -> int:
    """Trials that count towards n_trials: all of them, but a failed trial that was
    retried counts once, through its retry."""
    with quiet():
        retried = {
            optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials
        }
    return sum(1 for t in trials if t.number not in retried)


def finished(study: optuna.Study, trial: optuna.trial.Trial) -> bool:
    return study._storage.get_trial(trial._trial_id).state.is_finished()


class Heartbeat:
    """Beats for this worker's running trials until the batch is back. A trial beats as
    soon as it is added, right after `ask`: other workers fail a RUNNING trial that has
    no beat once it is older than the grace period."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_ids: Sequence[int] = ()):
        self.storage = storage
        self.interval = storage.get_heartbeat_interval()
        # trial_id -> how the log names the trial (its number once known).
        self.trials: dict[int, str] = {i: f"id {i}" for i in trial_ids}
        self.missed = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def add(self, trial: optuna.trial.Trial) -> None:
        self.trials[trial._trial_id] = str(trial.number)
        self.record(trial._trial_id)

    def record(self, trial_id: int) -> None:
        try:
            self.storage.record_heartbeat(trial_id)
        except Exception as e:  # a busy database costs one beat, not the search
            name = self.trials.get(trial_id, f"id {trial_id}")
            if self.missed:
                log.debug("heartbeat of trial %s missed: %s", name, reason(e))
                return
            # Once: a database that refuses every beat would say so every interval.
            self.missed = True
            log.warning(
                "heartbeat of trial %s missed (%s): other workers fail a trial without a "
                "beat for %d s; trying again every %d s",
                name,
                reason(e),
                2 * self.interval,
                self.interval,
            )

    def _beat(self) -> None:
        while True:
            for trial_id in list(self.trials):
                self.record(trial_id)
            if self.stop.wait(timeout=self.interval):
                return

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        # A beat blocked on the database lasts at most SQLite's lock wait; the thread is a
        # daemon, so a beat stuck longer (a lost PostgreSQL connection) holds up nothing.
        self.thread.join(timeout=SQLITE_LOCK_WAIT_S + self.interval)
        if self.thread.is_alive():
            log.warning("heartbeat thread still in a database call; going on without it")


class StudySweep(Sweeper):
    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        heartbeat_interval: int,
        max_retry: int | None,
        figures: bool,
        params: DictConfig | None,
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise SweeperConfigError(
                f"hydra.sweeper.max_failure_rate={max_failure_rate} is not allowed: "
                "must be in [0, 1]"
            )
        for key, value in (
            ("n_trials", n_trials),
            ("n_jobs", n_jobs),
            ("heartbeat_interval", heartbeat_interval),
        ):
            if value < 1:
                raise SweeperConfigError(
                    f"hydra.sweeper.{key}={value} is not allowed: must be >= 1"
                )
        self.sampler = sampler
        self.pruner = pruner
        self.direction = _direction(direction)
        self.storage_url = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.target = n_trials  # n_trials, or the grid's size where that is smaller
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.heartbeat_interval = heartbeat_interval
        self.max_retry = max_retry
        self.figures = figures
        self.params = params
        self.job_idx = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.storage_url = self.storage_url or (
            f"sqlite:///{Path(str(config.hydra.runtime.cwd)).resolve() / DEFAULT_DB}"
        )
        self.study_name = self.study_name or str(config.hydra.job.name)

    def sweep(self, arguments: list[str]) -> None:
        space, fixed = _space.parse(
            [f"{k}={v}" for k, v in (self.params or {}).items()] + arguments
        )
        target = self.n_trials
        if isinstance(self.sampler, functools.partial):  # the grid sampler, built here
            grid = _space.grid(space)
            self.sampler = self.sampler(grid)
            size = math.prod(len(v) for v in grid.values())
            if target > size:
                log.info("n_trials %d > %d points on the grid: %d trials", target, size, size)
                target = size
        self.target = target
        with storage_errors(self.storage_url):
            storage = open_storage(self.storage_url, self.heartbeat_interval, self.max_retry)
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self.sampler,
                pruner=self.pruner,
                direction=self.direction,
                load_if_exists=True,
            )
            existing = counted(study.get_trials(deepcopy=False))
        if study.direction.name.lower() != self.direction:
            raise SweeperConfigError(
                f"study {self.study_name!r} in {shown(self.storage_url)} was created to "
                f"{study.direction.name.lower()}, not to {self.direction}: set "
                "hydra.sweeper.study_name to start another study"
            )
        if existing:
            # A sampler seeded like the worker that began the study would propose its
            # points again (a resumed run, a second worker): this one draws its own.
            study.sampler.reseed_rng()
        log.info(
            "Optuna study %r in %s: %s, %s, %s; %d of %d trials there already",
            self.study_name,
            shown(self.storage_url),
            self.direction,
            type(study.sampler).__name__,
            type(study.pruner).__name__,
            existing,
            target,
        )
        # Every job opens the study by these (its trial number comes with the job).
        with read_write(self.config.hydra.overrides.hydra):
            self.config.hydra.overrides.hydra.extend(
                [
                    env_override(STORAGE_ENV, self.storage_url),
                    env_override(STUDY_ENV, self.study_name),
                    # The sweep's progress counts the trials this command runs.
                    env_override(names.SWEEP_JOBS_ENV, max(target - existing, 0)),
                ]
            )
        waiting: list[int] = []
        while True:
            with storage_errors(self.storage_url):
                # Every RUNNING trial has a live worker after this, or is failed (and
                # retried) within the grace period: the wait below always ends.
                self._fail_stale(study)
                trials = study.get_trials(deepcopy=False)
            # Trials still to create, and retries queued (WAITING) that `ask` hands out first.
            to_ask = target - counted(trials) + sum(t.state == TrialState.WAITING for t in trials)
            running = [t.number for t in trials if t.state == TrialState.RUNNING]
            if to_ask > 0:
                self._run_batch(study, storage, space, fixed, min(self.n_jobs, to_ask))
            elif running:
                if running != waiting:
                    log.info(
                        "waiting for trial(s) %s of other workers; one whose worker stops "
                        "beating is failed %d s after its last beat (or its start)",
                        ", ".join(map(str, running)),
                        2 * self.heartbeat_interval,
                    )
                    waiting = running
                # Other workers' last trials: if one of them dies, its trial is retried here.
                time.sleep(min(1.0, self.heartbeat_interval))
            else:
                break
        with storage_errors(self.storage_url):
            self._write_results(study, target)

    @staticmethod
    def _fail_stale(study: optuna.Study) -> None:
        with quiet():
            optuna.storages.fail_stale_trials(study)

    def _run_batch(self, study, storage, space, fixed, size: int) -> None:
        trials: list[optuna.trial.Trial] = []
        with Heartbeat(storage) as heartbeat, self._retry_if_stopped(study, storage, trials):
            overrides = []
            with storage_errors(self.storage_url), quiet():
                for _ in range(size):
                    trial = study.ask()
                    trials.append(trial)
                    heartbeat.add(trial)
                for trial in trials:
                    params = {**_space.suggest(trial, space), **fixed}
                    overrides.append(
                        tuple(f"{k}={v}" for k, v in params.items())
                        + (env_override(TRIAL_ENV, trial.number),)
                    )
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        with storage_errors(self.storage_url):
            failures = [
                e
                for trial, ret in zip(trials, returns, strict=True)
                if (e := self._tell(study, trial, ret))
            ]
        self._say_best(study)
        if failures and len(failures) / len(returns) > self.max_failure_rate:
            log.error(
                "%d of %d trials failed (max_failure_rate=%s)",
                len(failures),
                len(returns),
                self.max_failure_rate,
            )
            for ret in returns:
                ret.return_value  # noqa: B018  (raises the job's own error, with its traceback)

    def _say_best(self, study: optuna.Study) -> None:
        """After each batch: trials done of n_trials, and the best value so far."""
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if trials:
            pick = max if self.direction == "maximize" else min
            best = pick(trials, key=lambda t: t.value)
            log.info(
                "search: %d of %d trials complete; best so far %.4f (trial %d)",
                len(trials),
                self.target,
                best.value,
                best.number,
            )

    @staticmethod
    @contextmanager
    def _retry_if_stopped(study, storage, trials) -> Iterator[None]:
        """Ctrl-C or an error in the launcher: the batch's unfinished trials are failed
        and queued again now, rather than when their heartbeat goes stale, by the same
        callback (and `max_retry`) the storage applies to a stale trial."""
        try:
            yield
        except BaseException:
            retry = storage.get_heartbeat_stale_trial_callback()
            for trial in trials:
                try:
                    if not finished(study, trial):
                        retry(study, study.tell(trial, state=TrialState.FAIL))
                except Exception as e:  # the database may be why the batch stopped
                    log.warning("trial %d left RUNNING: %s", trial.number, e)
            raise

    def _tell(self, study, trial, ret) -> Exception | None:
        """Tells the study the job's value; returns the error of a trial that failed."""
        try:
            value = float(ret.return_value)
            if math.isnan(value):
                raise ValueError("the job returned NaN")
        except Exception as e:
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            log.warning("trial %d failed: %s", trial.number, e)
            return e
        if finished(study, trial):  # pruned: the job told the study itself
            return None
        try:
            study.tell(trial, value)
        except RuntimeError as e:
            # The grid sampler stops the study once every point is asked for, which Optuna
            # only allows inside study.optimize; the trial itself is stored.
            if "Study.stop" not in str(e):
                raise
        return None

    def _write_results(self, study: optuna.Study, target: int) -> None:
        trials = study.get_trials(deepcopy=False)
        states = Counter(t.state.name.lower() for t in trials)
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": self.study_name,
            "storage": shown(self.storage_url),
            "direction": self.direction,
            "n_trials": target,
            "trials": dict(states),
        }
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if complete:
            best = study.best_trial
            results |= {
                "best_trial": best.number,
                "best_params": best.params,
                "best_value": best.value,
            }
            log.info("best trial %d: %s = %s", best.number, best.params, best.value)
        log.info(
            "study %r: %s",
            self.study_name,
            ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no trials",
        )
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / RESULTS_FILE)
        if self.figures and complete:
            write_figures(study, self.sweep_dir / "search")
