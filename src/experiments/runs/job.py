"""Where and how one job runs, read from Hydra once: its folders, the config choices and
overrides that name it, its sweep's parent run, its share of the CPU when jobs run side
by side, where a launcher placed it, and the Optuna trial it is. Everything a run learns
of the sweep around it comes through here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from experiments.core import names
from experiments.core.digest import is_ignored
from experiments.sweeps import parallelism
from experiments.sweeps.objective import DEFAULT_OBJECTIVES
from experiments.sweeps.progress import Ended
from hydra_plugins.gradlab_optuna_sweeper.job import JobTrial

if TYPE_CHECKING:
    from experiments.sweeps.pruning import TrialReporter

# Groups whose choices name a run, in this order (a preset's name replaces them).
NAME_GROUPS = ("activation", "init", "normalization", "clipping", "optimizer")


def searched(objectives: Any) -> list[str] | None:
    """A search's objectives, None where it optimizes val_accuracy alone."""
    if isinstance(objectives, str):
        objectives = [objectives]
    found = [str(o) for o in objectives] if isinstance(objectives, Sequence) else []
    return None if not found or tuple(found) == DEFAULT_OBJECTIVES else found


@dataclass
class Job:
    launch_dir: Path
    output_dir: Path
    choices: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    parent_run_id: str | None = None
    # TensorFlow threads of this job when several run side by side (sweeps.parallelism).
    threads: int | None = None
    # The launcher's class (`hydra.launcher._target_`): the cluster ones checkpoint.
    launcher: str = ""
    # Where the launcher placed it beyond its host (the Ray node), as tags.
    placement: dict[str, str] = field(default_factory=dict)
    # The Optuna trial this job is, and the search's pruner config; None outside a search.
    trial: JobTrial | None = None
    pruner: Any = None
    # Runs of the trial's configuration, one per seed: with several, no seed reports to
    # the pruner (docs/sweeps.md, seeds per trial).
    seeds_per_trial: int = 1
    # What the search optimizes, when it is more or other than val_accuracy alone.
    objectives: list[str] | None = None

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
            parent_run_id=os.environ.get(names.SWEEP_PARENT_ENV) if multirun else None,
            threads=parallelism.share_for_launcher(hc.launcher),
            launcher=str(hc.launcher.get("_target_", "")),
            placement=parallelism.placement_tags(),
            trial=JobTrial.from_env_set(hc.job.get("env_set")),
            pruner=hc.sweeper.get("pruner"),
            seeds_per_trial=int(hc.sweeper.get("seeds_per_trial") or 1),
            objectives=searched(hc.sweeper.get("objectives")),
        )

    @property
    def run_name(self) -> str:
        """`<activation>-<init>-<normalization>-<clipping>-<optimizer>` (or the preset's
        name), then the command line's overrides that change what the run computes
        (`model=deep`, `optimizer.learning_rate=0.01`; not `tracking.*` or
        `training.verbose`): readable in the runs table."""
        choices = self.choices
        base = choices.get("experiment") or "-".join(
            choices[g] for g in NAME_GROUPS if g in choices
        )

        def shown(override: str) -> bool:
            key = override.split("=", 1)[0].lstrip("+~")
            if key in NAME_GROUPS or key in ("experiment", "hparams_search"):
                return False
            return not is_ignored(key)

        extra = [o for o in self.overrides if shown(o)]
        name = base if not extra else f"{base} " + ",".join(extra)
        return name[:250]

    def tags(self) -> dict[str, str]:
        """What the job says of itself on its run: its choices, its folder (on the
        `host` of tracking.orphans.process_tags), where it was placed, its trial."""
        tags = {f"{names.CHOICE_TAG_PREFIX}{g}": option for g, option in self.choices.items()}
        tags[names.OUTPUT_DIR_TAG] = str(self.output_dir)
        if self.trial is not None:
            tags[names.OPTUNA_STUDY_TAG] = self.trial.study_name
            tags[names.OPTUNA_TRIAL_TAG] = str(self.trial.number)
        return tags | self.placement

    def ended(self, result) -> Ended:
        """The job as its sweep's progress counts it; `result` (runs.execute.Result) is
        None for a job that raised."""
        return Ended(
            name=self.run_name,
            status=result.status if result is not None else "FAILED",
            value=result.val_accuracy if result is not None else None,
            trial=self.trial.number if self.trial is not None else None,
        )

    def start_tensorflow(self) -> dict[str, str]:
        """TensorFlow, started with this job's share of threads; its pool sizes as tags."""
        return parallelism.start_tensorflow(self.threads)

    def returned(self, result) -> float | dict[str, float | None]:
        """What the job hands its sweeper: the objective, or each of several."""
        if self.objectives is None:
            return result.objective
        return result.objectives(self.objectives)

    def trial_reporter(self) -> TrialReporter | None:
        """The Keras callback that reports to this job's trial; None outside a search,
        and where pruning is off: a trial over several seeds, a search of objectives other
        than val_accuracy alone (what the job reports each epoch, and Optuna prunes no
        multi-objective study)."""
        if self.trial is None or self.seeds_per_trial > 1 or self.objectives is not None:
            return None
        # Keras (the reporter is a Keras callback): imported once training is sure.
        from experiments.sweeps.pruning import TrialReporter

        return TrialReporter.open(self.trial, self.pruner)
