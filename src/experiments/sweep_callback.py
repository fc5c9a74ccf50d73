"""One MLflow parent run per Hydra multirun, created before any job starts.

A fresh SQLite store hit by several processes at once fails in MLflow's schema
migration, so the store, the experiment and the parent run are created here, once, in
the launching process; jobs find the parent's id in the environment, which every local
launcher (basic, joblib, Ray) passes on to its workers.
"""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.recorder = None
        self._ended = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow.tracking import MlflowClient

        from experiments import tracking
        from experiments.train import PROJECT_DIR, SWEEP_PARENT_ENV

        launch_dir = Path(config.hydra.runtime.cwd)
        uri = tracking.tracking_uri(config.tracking.uri, launch_dir)
        client = MlflowClient(uri)
        experiment_id = tracking.ensure_experiment(
            client, config.tracking.experiment, tracking.artifact_location(uri, launch_dir)
        )
        overrides = list(config.hydra.overrides.task)
        self.recorder = tracking.RunRecorder.start(
            client,
            experiment_id,
            ("sweep " + " ".join(overrides))[:250],
            {
                "sweep": "true",
                "sweep_overrides": " ".join(overrides)[:5000],
                "git_commit": tracking.git_commit(PROJECT_DIR),
            },
        )
        os.environ[SWEEP_PARENT_ENV] = self.recorder.run_id
        self._ended = False
        # Hydra skips on_multirun_end when a job raises; the parent run still gets closed.
        atexit.register(self._end, "FAILED")
        log.info("MLflow sweep parent run %s in %s", self.recorder.run_id, uri)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end("FINISHED")

    def _end(self, status: str) -> None:
        from experiments.train import SWEEP_PARENT_ENV

        if self.recorder is None or self._ended:
            return
        self._ended = True
        os.environ.pop(SWEEP_PARENT_ENV, None)
        counts = self.child_counts()
        self.recorder.log_metrics({f"children_{k.lower()}": v for k, v in counts.items()})
        self.recorder.end(status)

    def child_counts(self) -> dict[str, int]:
        client, run_id = self.recorder.client, self.recorder.run_id
        experiment_id = client.get_run(run_id).info.experiment_id
        children = client.search_runs(
            [experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
            max_results=50000,
        )
        counts = {"FINISHED": 0, "FAILED": 0, "KILLED": 0, "RUNNING": 0}
        for child in children:
            counts[child.info.status] = counts.get(child.info.status, 0) + 1
        return counts
