"""One MLflow parent run per Hydra multirun, created before any job starts.

A fresh SQLite store hit by several processes at once fails in MLflow's schema
migration, so the store, the experiment and the parent run are created here, once, in
the launching process. Jobs learn the parent's id from the environment variable
GRADLAB_SWEEP_PARENT_RUN_ID, which Hydra itself sets in every job through
`hydra.job.env_set`: the job's config travels with it to any launcher (a joblib worker
that outlived an earlier sweep, a Ray worker on another node), where the launching
process's environment does not.

The parent counts its children by status when the sweep ends. A pruned Optuna trial's
run ends KILLED (it stopped before its last epoch, on purpose) with the tag
`trial_state=pruned`: KILLED keeps it out of the FINISHED runs that a re-run skips, the
tag tells it from a run stopped by Ctrl-C, and the parent counts it in
`children_pruned` instead of `children_killed`.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from experiments.config.checks import ConfigError, check_experiment_name
from experiments.core import names, stopping
from experiments.paths import CHECKOUT_DIR
from experiments.sweeps import progress
from experiments.tracking import resume

log = logging.getLogger(__name__)
PRUNED_COUNT = "PRUNED"


def pass_env_to_jobs(config: DictConfig, name: str, value: str) -> None:
    """Every job of this multirun starts with `name=value` in its environment: each job's
    config is composed again from hydra.overrides.hydra plus its own overrides."""
    with read_write(config.hydra.overrides.hydra):
        config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{name}={value}")


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.recorder = None
        self._ended = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # MLflow with the store: Hydra builds this callback for every command, `--help`
        # and single runs included, which must not pay for it.
        from experiments.tracking import store
        from experiments.tracking.orphans import process_tags
        from experiments.tracking.recorder import RunRecorder, context_tags

        # The experiment the parent run is made in is checked first (each job checks its
        # own config, the sweep's values applied). Hydra turns an exception of a callback
        # into a warning: exit here, as a config error (2).
        try:
            check_experiment_name(str(config.tracking.experiment))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        launch_dir = Path(config.hydra.runtime.cwd)
        try:
            client, experiment_id = store.open_experiment(
                config.tracking.uri, config.tracking.experiment, launch_dir
            )
        except store.TrackingError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        overrides = list(config.hydra.overrides.task)
        tags = {
            names.SWEEP_TAG: "true",
            "sweep_overrides": " ".join(overrides)[:5000],
            "sweep_dir": str(config.hydra.sweep.dir),
            "launcher": str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1],
            names.GIT_COMMIT_TAG: store.git_commit(CHECKOUT_DIR),
            **process_tags(),
        }
        description = (
            f"A sweep; each job is a child run. Overrides: {', '.join(overrides) or 'none'}."
        )
        self.recorder = RunRecorder.start(
            client,
            experiment_id,
            ("sweep " + " ".join(overrides))[:250],
            context_tags(tags, description),
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        jobs = progress.planned_jobs(config.hydra.sweeper, overrides)
        for name, value in {
            names.SWEEP_PARENT_ENV: self.recorder.run_id,
            **progress.start(self.sweep_dir, jobs, client.tracking_uri),
        }.items():
            os.environ[name] = value
            pass_env_to_jobs(config, name, value)
        if str(config.hydra.launcher.get("_target_", "")).endswith("SlurmLauncher"):
            # Slurm's commands and submitit: for a Slurm sweep only.
            from experiments.sweeps.slurm import use_squeue_without_accounting

            use_squeue_without_accounting()
        self._ended = False
        # Hydra skips on_multirun_end when a job raises; the parent run still gets closed.
        atexit.register(self._end, "FAILED")
        stopping.on_stop(self._end)
        log.info("MLflow sweep parent run %s in %s", self.recorder.run_id, client.tracking_uri)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.recorder is None or self._ended:
            return
        self._log_search_result(config)
        self._end("FINISHED")

    def _log_search_result(self, config: DictConfig) -> None:
        """An optimizing sweeper's result (Optuna writes optimization_results.yaml)."""
        results = Path(str(config.hydra.sweep.dir)) / names.SEARCH_RESULTS_FILE
        if not results.is_file():
            return
        found = OmegaConf.load(results)
        self.recorder.log_artifact(results, names.SEARCH_FOLDER)
        if found.get("best_value") is not None:
            self.recorder.log_metrics({"best_value": float(found.best_value)})
            best = {f"best.{k}": str(v) for k, v in (found.get("best_params") or {}).items()}
            self.recorder.set_tags(best)
        seeds = found.get("best_seeds")
        if seeds is not None:  # the best trial's first objective, over its seeds
            first = seeds[found.objectives[0]]
            low, high = first.interval
            stats = (first.mean, first.std, low, high, seeds.n)
            self.recorder.log_metrics(
                {
                    names.BEST_SEEDS_PREFIX + k: float(v)
                    for k, v in zip(names.BEST_SEEDS_METRICS, stats, strict=True)
                }
            )
        if found.get("pareto_front"):
            front = ",".join(str(t.trial) for t in found.pareto_front)
            self.recorder.set_tags({names.PARETO_FRONT_TAG: front})
        self._log_study(found, results.parent / names.SEARCH_FOLDER)

    def _log_study(self, found: DictConfig, figures: Path) -> None:
        """The Optuna study behind the search: its name, best trial and figures."""
        if found.get("study_name") is not None:
            tags = {names.OPTUNA_STUDY_TAG: found.study_name, "optuna_storage": found.storage}
            if found.get("best_trial") is not None:
                tags["best_trial"] = found.best_trial
            self.recorder.set_tags(tags)
        for figure in sorted(figures.glob("*.png")) if figures.is_dir() else []:
            self.recorder.log_artifact(figure, names.SEARCH_FOLDER)

    def _end(self, status: str, reason: str | None = None) -> str | None:
        """Ends the parent run once, with the children's counts and the report: FINISHED
        at the sweep's end; KILLED (Ctrl-C, SIGTERM) or FAILED (an error) when the command
        stops early (core.stopping), with the reason. Returns its id; None when it had
        ended already."""
        if self.recorder is None or self._ended:
            return None
        self._ended = True
        for name in progress.ENVIRONMENT:
            os.environ.pop(name, None)
        try:
            counts = self.child_counts()
            self.recorder.log_metrics({f"children_{k.lower()}": v for k, v in counts.items()})
            self._log_report()
            self.recorder.end(status, reason)
        except Exception as e:  # the store may be the reason the sweep is ending
            log.error("could not close sweep parent run %s: %s", self.recorder.run_id, e)
            return self.recorder.run_id
        log.info(
            "sweep parent run %s ended %s: %s",
            self.recorder.run_id,
            status,
            ", ".join(
                f"{n} {k.lower()}" for k, n in counts.items() if n or k not in ("RUNNING", "PRUNED")
            ),
        )
        return self.recorder.run_id

    def _log_report(self) -> None:
        """The sweep's comparison page, on the parent run (where the MLflow UI opens it)
        and in the sweep's output folder; a failed sweep gets one too."""
        # The report (scipy, matplotlib) only at the sweep's end, never for a single run.
        from experiments.report.build import log_sweep_report

        log_sweep_report(self.recorder.client, self.recorder.run_id, self.sweep_dir / "report")

    def child_counts(self) -> dict[str, int]:
        """Children by status (pruned Optuna trials apart from other KILLED runs), and
        jobs skipped because their config had FINISHED before."""
        client, run_id = self.recorder.client, self.recorder.run_id
        parent = client.get_run(run_id)
        children = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
            max_results=50000,
        )
        counts = {"FINISHED": 0, "FAILED": 0, "KILLED": 0, "PRUNED": 0, "RUNNING": 0}
        for child in children:
            key = count_key(child)
            counts[key] = counts.get(key, 0) + 1
        counts["SKIPPED"] = resume.skipped_count(parent)
        return counts


def count_key(run) -> str:
    """The key of `MlflowSweepCallback.child_counts` this child run counts under."""
    pruned = run.data.tags.get(names.TRIAL_STATE_TAG) == names.TRIAL_PRUNED
    return PRUNED_COUNT if run.info.status == "KILLED" and pruned else run.info.status
