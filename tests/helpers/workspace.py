"""A launch folder for in-process runs of the real entry point."""

from __future__ import annotations

import os
import sys
from pathlib import Path


class Workspace:
    """A launch folder: runs started here land in <folder>/mlflow.db and <folder>/mlruns."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"

    def train(self, *overrides: str) -> int:
        """The real `python -m experiments.train` in-process; returns its exit code."""
        from hydra.core.global_hydra import GlobalHydra

        from experiments import train

        argv = ["experiments.train", *overrides, f"hydra.run.dir={self.folder}/outputs/run"]
        if "-m" in overrides or "--multirun" in overrides:
            argv.append(f"hydra.sweep.dir={self.folder}/multirun")
        old_argv, old_cwd = sys.argv, os.getcwd()
        sys.argv = argv
        os.chdir(self.folder)
        try:
            train.main()
            return 0
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else 1
        finally:
            sys.argv = old_argv
            os.chdir(old_cwd)
            GlobalHydra.instance().clear()

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri)

    def runs(self, experiment: str = "gradient-lab"):
        client = self.client()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        return client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])
