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
  values and may end its trial PRUNED itself; the sweeper then leaves that trial as it is;
- a trial may run its configuration over several seeds (`_seeds`), all launched in the
  trial's batch, and be told a statistic of theirs; a search may have several objectives
  (the study's metric names), whose Pareto front the results file lists.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, ListConfig, OmegaConf, read_write
from optuna.trial import TrialState

from experiments.core import names
from experiments.sweeps.objective import MONITOR

from . import _seeds, _space
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
RESULTS_FILE = names.SEARCH_RESULTS_FILE
# The config key a trial over several seeds sets for each of them.
SEED_KEY = "training.seed"
DIRECTIONS = ("minimize", "maximize")


class SweeperConfigError(HydraException, ValueError):
    """A `hydra.sweeper` setting out of range; the entry point says it in one line (exit 2),
    as Hydra's own config errors."""


def _direction(direction: Any) -> str:
    return getattr(direction, "name", None) or str(direction)


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | ListConfig) else [value]


def _shown(values: Sequence[Any]) -> str:
    return f"[{','.join(map(str, values))}]"


def auto_sampler(n_objectives: int, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """`hydra/sweeper/sampler=auto`, the default: TPE as `tpe` configures it for one
    objective, NSGA-II for several."""
    from dataclasses import asdict

    from .config import TPESamplerConfig

    if n_objectives > 1:
        return optuna.samplers.NSGAIISampler(seed=seed)
    settings = asdict(TPESamplerConfig(seed=seed))
    settings.pop("_target_")
    return optuna.samplers.TPESampler(**settings)


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
        objectives: Sequence[str] = ("val_accuracy",),
        seeds_per_trial: int = 1,
        seed_statistic: str = "mean",
        custom_search_space: str | None = None,
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
            ("seeds_per_trial", seeds_per_trial),
        ):
            if value < 1:
                raise SweeperConfigError(
                    f"hydra.sweeper.{key}={value} is not allowed: must be >= 1"
                )
        self.objectives = [str(o) for o in _listed(objectives)]
        self.directions = [_direction(d) for d in _listed(direction)]
        self._check_objectives()
        if seed_statistic not in _seeds.STATISTICS:
            raise SweeperConfigError(
                f"hydra.sweeper.seed_statistic={seed_statistic} is not allowed: must be "
                + " or ".join(_seeds.STATISTICS)
            )
        if seed_statistic != "mean" and seeds_per_trial < 2:
            raise SweeperConfigError(
                f"hydra.sweeper.seed_statistic={seed_statistic} is not allowed with "
                f"hydra.sweeper.seeds_per_trial={seeds_per_trial}: an interval needs >= 2 seeds"
            )
        self.extend = None
        if custom_search_space:
            try:
                self.extend = get_method(custom_search_space)
            except Exception as e:  # Hydra's words name the module or attribute it missed
                said = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise SweeperConfigError(
                    f"hydra.sweeper.custom_search_space={custom_search_space} is not allowed: "
                    f"{said}; give the dotted path of a function (cfg, trial)"
                ) from None
        self.seeds_per_trial = seeds_per_trial
        self.seed_statistic = seed_statistic
        self.seeds: list[int] = []  # each trial's seeds; none: one job, the config's seed
        self.sampler = sampler
        self.pruner = pruner
        # One objective's direction, as the results file and the log say it.
        self.direction = self.directions[0] if len(self.directions) == 1 else None
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

    def _check_objectives(self) -> None:
        objectives, directions = self.objectives, self.directions
        if not objectives or len(set(objectives)) < len(objectives) or not all(objectives):
            raise SweeperConfigError(
                f"hydra.sweeper.objectives={_shown(objectives)} is not allowed: must name "
                "one or more distinct final metrics (default [val_accuracy])"
            )
        wrong = [d for d in directions if d not in DIRECTIONS]
        if wrong:
            raise SweeperConfigError(
                f"hydra.sweeper.direction={wrong[0]} is not allowed: must be minimize or "
                "maximize (a list of them, one per objective, for several)"
            )
        if len(directions) != len(objectives):
            raise SweeperConfigError(
                f"hydra.sweeper.direction={_shown(directions)} is not allowed with "
                f"hydra.sweeper.objectives={_shown(objectives)}: give one direction per objective"
            )

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
        self._seed_space(space, fixed)
        target = self.n_trials
        if isinstance(self.sampler, functools.partial):  # built here, once the space is known
            if self.sampler.func is auto_sampler:
                self.sampler = self.sampler(len(self.objectives))
            else:  # the grid sampler
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
                directions=self.directions,
                load_if_exists=True,
            )
            existing = counted(study.get_trials(deepcopy=False))
            self._check_study(study)
        if existing:
            # A sampler seeded like the worker that began the study would propose its
            # points again (a resumed run, a second worker): this one draws its own.
            study.sampler.reseed_rng()
        log.info(
            "Optuna study %r in %s: %s, %s, %s; %d of %d trials there already",
            self.study_name,
            shown(self.storage_url),
            ", ".join(f"{d} {o}" for d, o in zip(self.directions, self.objectives, strict=True)),
            type(study.sampler).__name__,
            type(study.pruner).__name__,
            existing,
            target,
        )
        if self.seeds:
            log.info(
                "each trial over %d seeds (%s=%s), told their %s",
                len(self.seeds),
                SEED_KEY,
                ",".join(map(str, self.seeds)),
                self.seed_statistic,
            )
        pruning_off = (
            f"hydra.sweeper.seeds_per_trial={len(self.seeds)}"
            if self.seeds
            else f"hydra.sweeper.objectives={_shown(self.objectives)}"
            if self.objectives != [MONITOR]
            else None
        )
        if pruning_off and not isinstance(study.pruner, optuna.pruners.NopPruner):
            # Jobs report val_accuracy alone, one seed at a time (runs.job.trial_reporter).
            log.warning(
                "pruning is off with %s: no job reports to %s",
                pruning_off,
                type(study.pruner).__name__,
            )
        # Every job opens the study by these (its trial number comes with the job).
        with read_write(self.config.hydra.overrides.hydra):
            self.config.hydra.overrides.hydra.extend(
                [
                    env_override(STORAGE_ENV, self.storage_url),
                    env_override(STUDY_ENV, self.study_name),
                    # The sweep's progress counts the trials this command runs.
                    env_override(
                        names.SWEEP_JOBS_ENV,
                        max(target - existing, 0) * max(len(self.seeds), 1),
                    ),
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

    def _seed_space(self, space: dict, fixed: dict) -> None:
        """Each trial's seeds: from the seed the command line or params fix, else the
        config's; that seed leaves `fixed`, since every seed's job sets its own."""
        if self.seeds_per_trial == 1:
            return
        if SEED_KEY in space:
            raise SweeperConfigError(
                f"hydra.sweeper.seeds_per_trial={self.seeds_per_trial} sets {SEED_KEY} for "
                f"each seed: {SEED_KEY} cannot also be searched"
            )
        base = fixed.pop(SEED_KEY, None)
        if base is None:
            base = OmegaConf.select(self.config, SEED_KEY, default=0)
        try:
            base = int(base)
        except (TypeError, ValueError):
            raise SweeperConfigError(
                f"{SEED_KEY}={base} is not allowed with hydra.sweeper.seeds_per_trial: "
                "must be an integer, the first seed"
            ) from None
        self.seeds = _seeds.seeds(base, self.seeds_per_trial)

    def _check_study(self, study: optuna.Study) -> None:
        """A study stored earlier is continued only for the same directions and objectives."""
        made = [d.name.lower() for d in study.directions]
        if made != self.directions:
            raise SweeperConfigError(
                f"study {self.study_name!r} in {shown(self.storage_url)} was created to "
                f"{', '.join(made)}, not to {', '.join(self.directions)}: set "
                "hydra.sweeper.study_name to start another study"
            )
        with quiet():  # metric names are experimental in Optuna
            if study.metric_names is None:
                if not study.get_trials(deepcopy=False):
                    study.set_metric_names(self.objectives)
                return  # a study of an earlier version: its objective is not on record
            if list(study.metric_names) != self.objectives:
                raise SweeperConfigError(
                    f"study {self.study_name!r} in {shown(self.storage_url)} was created for "
                    f"objectives {_shown(study.metric_names)}, not {_shown(self.objectives)}: "
                    "set hydra.sweeper.study_name to start another study"
                )

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
                    params = _space.suggest(trial, space, fixed, self.extend, self.config)
                    shared = tuple(f"{k}={v}" for k, v in params.items())
                    shared += (env_override(TRIAL_ENV, trial.number),)
                    # Every seed of every trial in one launch: a parallel launcher runs them
                    # side by side.
                    for seed in self.seeds or [None]:
                        own = () if seed is None else (f"{SEED_KEY}={seed}",)
                        overrides.append(shared + own)
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        per_trial = max(len(self.seeds), 1)
        with storage_errors(self.storage_url):
            failures = [
                e
                for i, trial in enumerate(trials)
                if (e := self._tell(study, trial, returns[i * per_trial : (i + 1) * per_trial]))
            ]
        self._say_best(study)
        if failures and len(failures) / len(trials) > self.max_failure_rate:
            log.error(
                "%d of %d trials failed (max_failure_rate=%s)",
                len(failures),
                len(trials),
                self.max_failure_rate,
            )
            for ret in returns:
                ret.return_value  # noqa: B018  (raises the job's own error, with its traceback)

    def _say_best(self, study: optuna.Study) -> None:
        """After each batch: trials done of n_trials, and the best value so far (the
        Pareto front's trials for several objectives)."""
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not trials:
            return
        if self.direction is None:
            log.info(
                "search: %d of %d trials complete; Pareto front so far: trial(s) %s",
                len(trials),
                self.target,
                ", ".join(str(t.number) for t in sorted(study.best_trials, key=_number)),
            )
            return
        best = study.best_trial  # the study's own pick, as _write_results reports it
        log.info(
            "search: %d of %d trials complete; best so far %.4f (trial %d%s)",
            len(trials),
            self.target,
            best.value,
            best.number,
            _over_seeds(best, self.objectives[0]),
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

    def _tell(self, study, trial, rets: Sequence[Any]) -> Exception | None:
        """Tells the study the value of the trial's jobs (one per seed); returns the error
        of a trial that failed. A trial fails when any of its seeds does: a statistic
        over the seeds that happened to run would compare unlike with like."""
        per_seed, errors = [], []
        for seed, ret in zip(self.seeds or [None], rets, strict=True):
            try:
                per_seed.append(self._values(ret))
            except Exception as e:
                errors.append((seed, e))
        if errors:
            seed, error = errors[0]
            if seed is not None:
                trial.set_user_attr("failed_seeds", [s for s, _ in errors])
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            where = "" if seed is None else f" ({len(errors)} of {len(rets)} seeds; seed {seed})"
            log.warning("trial %d failed%s: %s", trial.number, where, error)
            return error
        if finished(study, trial):  # pruned: the job told the study itself
            return None
        values = per_seed[0]
        if self.seeds:
            trial.set_user_attr("n", len(self.seeds))
            trial.set_user_attr("seeds", list(self.seeds))
            values = []
            for k, (objective, direction) in enumerate(
                zip(self.objectives, self.directions, strict=True)
            ):
                found = [v[k] for v in per_seed]
                summary = _seeds.Summary.of(found)
                for key, value in summary.attrs(objective).items():
                    trial.set_user_attr(key, value)
                trial.set_user_attr(f"{objective}.values", found)
                values.append(summary.value(self.seed_statistic, direction))
        try:
            study.tell(trial, values)
        except RuntimeError as e:
            # The grid sampler stops the study once every point is asked for, which Optuna
            # only allows inside study.optimize; the trial itself is stored.
            if "Study.stop" not in str(e):
                raise
        return None

    def _values(self, ret) -> list[float]:
        """One job's value of each objective; raises the job's error, or says what the
        value lacks."""
        returned = ret.return_value
        if isinstance(returned, Mapping):
            found = [returned.get(name) for name in self.objectives]
        elif len(self.objectives) > 1:
            raise ValueError(f"the job returned one value for {len(self.objectives)} objectives")
        else:
            found = [returned]
        values = []
        for name, value in zip(self.objectives, found, strict=True):
            if value is None:
                raise ValueError(f"the run logged no {name} (or its training exploded)")
            value = float(value)
            if math.isnan(value):
                raise ValueError(
                    "the job returned NaN"
                    if len(self.objectives) == 1
                    else f"the job returned NaN for {name}"
                )
            values.append(value)
        return values

    def _write_results(self, study: optuna.Study, target: int) -> None:
        trials = study.get_trials(deepcopy=False)
        states = Counter(t.state.name.lower() for t in trials)
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": self.study_name,
            "storage": shown(self.storage_url),
            "direction": self.direction or list(self.directions),
            "objectives": list(self.objectives),
            "n_trials": target,
            "trials": dict(states),
        }
        if self.seeds:
            results |= {"seeds_per_trial": len(self.seeds), "seed_statistic": self.seed_statistic}
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if complete and self.direction is not None:
            best = study.best_trial
            results |= {
                "best_trial": best.number,
                "best_params": best.params,
                "best_value": best.value,
            }
            if self.seeds:
                results["best_seeds"] = _seed_stats(best, self.objectives)
            log.info(
                "best trial %d: %s = %s%s",
                best.number,
                best.params,
                best.value,
                _over_seeds(best, self.objectives[0]),
            )
        elif complete:
            front = sorted(study.best_trials, key=_number)
            results["pareto_front"] = [
                {
                    "trial": t.number,
                    "params": t.params,
                    "values": dict(zip(self.objectives, t.values, strict=True)),
                    **({"seeds": _seed_stats(t, self.objectives)} if self.seeds else {}),
                }
                for t in front
            ]
            log.info("Pareto front: %d trial(s)", len(front))
            for t in front:
                log.info("    trial %d: %s, %s", t.number, t.values, t.params)
        log.info(
            "study %r: %s",
            self.study_name,
            ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no trials",
        )
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / RESULTS_FILE)
        if self.figures and complete:
            write_figures(study, self.sweep_dir / names.SEARCH_FOLDER, self.objectives)


def _number(trial: optuna.trial.FrozenTrial) -> int:
    return trial.number


def _seed_stats(trial: optuna.trial.FrozenTrial, objectives: Sequence[str]) -> dict[str, Any]:
    """A trial's statistics over its seeds, as the results file lists them."""
    attrs = trial.user_attrs
    found: dict[str, Any] = {"n": attrs.get("n"), "seeds": attrs.get("seeds")}
    for objective in objectives:
        found[objective] = {
            key: attrs.get(f"{objective}.{key}") for key in ("mean", "std", "interval", "values")
        }
    return found


def _over_seeds(trial: optuna.trial.FrozenTrial, objective: str) -> str:
    """`; mean 0.8412, 95% interval [0.8301, 0.8523] over 3 seeds` for a trial over seeds."""
    attrs = trial.user_attrs
    if f"{objective}.interval" not in attrs:
        return ""
    low, high = attrs[f"{objective}.interval"]
    return (
        f"; mean {attrs[f'{objective}.mean']:.4f}, 95% interval [{low:.4f}, {high:.4f}] "
        f"over {attrs['n']} seeds"
    )
