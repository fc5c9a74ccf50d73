# ruff: noqa: UP006, UP045  (OmegaConf 2.3 reads typing.Optional/List/Dict, not X | None)
"""The sweeper's config in Hydra's ConfigStore: `hydra/sweeper=gradlab_optuna` with its
samplers (`hydra/sweeper/sampler`: auto, tpe, nsga2, random, cmaes, grid) and pruners
(`hydra/sweeper/pruner`: none, median, successive_halving).

Imported by Hydra's plugin scan on every command, so it imports neither Optuna nor
anything heavy; the sweeper builds the sampler and pruner with `hydra.utils.instantiate`.
No `from __future__ import annotations`: OmegaConf reads these annotations as types, and
Hydra's scan runs this module before it is in sys.modules, where dataclasses look up
string annotations.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional  # noqa: UP035

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PROVIDER = "gradlab_optuna_sweeper"


class Direction(Enum):
    minimize = 1
    maximize = 2


@dataclass
class SamplerConfig:
    _target_: str = MISSING


@dataclass
class TPESamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10
    multivariate: bool = False
    # Trials running at once (parallel jobs, other workers) count as bad guesses while
    # they run, so the sampler does not ask for the same point twice.
    constant_liar: bool = True


@dataclass
class AutoSamplerConfig(SamplerConfig):
    """TPE (as `tpe`) for one objective, NSGA-II (as `nsga2`) for several: built once the
    sweeper knows how many it has."""

    _target_: str = "hydra_plugins.gradlab_optuna_sweeper._impl.auto_sampler"
    _partial_: bool = True
    seed: Optional[int] = None


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    """Optuna's genetic sampler for several objectives (it also takes one)."""

    _target_: str = "optuna.samplers.NSGAIISampler"
    seed: Optional[int] = None
    population_size: int = 50


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    """Needs the `cmaes` package (in the project's `optuna` extra); numeric params only,
    categorical ones are drawn at random."""

    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: Optional[int] = None
    n_startup_trials: int = 1
    sigma0: Optional[float] = None
    restart_strategy: Optional[str] = None
    warn_independent_sampling: bool = False


@dataclass
class GridSamplerConfig(SamplerConfig):
    """The grid is built at sweep time from `hydra.sweeper.params` (choice and range)."""

    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True
    seed: Optional[int] = None


@dataclass
class PrunerConfig:
    _target_: str = MISSING


@dataclass
class NopPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConfig(PrunerConfig):
    """Stops a trial whose value at an epoch is worse than the median of earlier trials'
    values at that epoch."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class SuccessiveHalvingPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class OptunaStudySweeperConf:
    _target_: str = "hydra_plugins.gradlab_optuna_sweeper.optuna_sweeper.OptunaStudySweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "auto"}, {"pruner": "none"}])
    sampler: Any = MISSING
    pruner: Any = MISSING
    # minimize or maximize; a list, one per objective, for several.
    direction: Any = Direction.minimize
    # The final metrics the search optimizes (any a run logs: val_accuracy, test_accuracy,
    # epoch_seconds, param_count, ...); several make it a multi-objective search.
    objectives: List[str] = field(default_factory=lambda: ["val_accuracy"])
    # Runs of each trial's configuration, with training.seed = base, base + 1, ... (base:
    # the config's seed); the trial's value is a statistic of theirs (seed_statistic).
    seeds_per_trial: int = 1
    # mean, or lower_bound: the 95% t-interval's end on the losing side (the lower bound
    # of an objective maximized, the upper of one minimized); needs 2 seeds or more.
    seed_statistic: str = "mean"
    # A database URL (sqlite:///..., postgresql://...); null: optuna.db in the launch folder.
    storage: Optional[str] = None
    # null: Hydra's job name.
    study_name: Optional[str] = None
    # The number of trials the study should reach, counting those of earlier runs and of
    # other workers: a search stopped after 7 of 20 runs 13 more when started again.
    n_trials: int = 20
    # Trials asked for at once and handed to the launcher together.
    n_jobs: int = 1
    # Failed trials per batch above this rate stop the search (1.0: never).
    max_failure_rate: float = 0.0
    # Seconds between the heartbeats of this worker's running trials; a RUNNING trial whose
    # heartbeat is older than two intervals (its worker died) is marked failed and retried.
    heartbeat_interval: int = 10
    # How often one failed-by-heartbeat trial is retried (null: no limit).
    max_retry: Optional[int] = 3
    # Optuna's figures (history, importances, parallel coordinates) in <sweep dir>/search/.
    figures: bool = True
    # The search space in Hydra's sweep syntax: choice(...), range(...), interval(...),
    # tag(log, interval(...)); a plain value is fixed for every trial.
    params: Dict[str, str] = field(default_factory=dict)
    # As upstream: the dotted path of a function (cfg, trial) called after the params are
    # drawn, for conditional ones (trial.suggest_*); a mapping it returns is fixed for the
    # trial.
    custom_search_space: Optional[str] = None


store = ConfigStore.instance()
store.store(
    group="hydra/sweeper", name="gradlab_optuna", node=OptunaStudySweeperConf, provider=PROVIDER
)
for name, node in {
    "auto": AutoSamplerConfig,
    "tpe": TPESamplerConfig,
    "nsga2": NSGAIISamplerConfig,
    "random": RandomSamplerConfig,
    "cmaes": CmaEsSamplerConfig,
    "grid": GridSamplerConfig,
}.items():
    store.store(group="hydra/sweeper/sampler", name=name, node=node, provider=PROVIDER)
for name, node in {
    "none": NopPrunerConfig,
    "median": MedianPrunerConfig,
    "successive_halving": SuccessiveHalvingPrunerConfig,
}.items():
    store.store(group="hydra/sweeper/pruner", name=name, node=node, provider=PROVIDER)
