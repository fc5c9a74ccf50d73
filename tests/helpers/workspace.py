"""A launch folder for in-process runs of the real entry point."""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path


@functools.cache
def _empty_store() -> Path:
    """An empty MLflow store, made by MLflow once per test process: a new store runs
    every schema migration (about 1.5 s), a copy of this one costs nothing."""
    from mlflow.tracking import MlflowClient

    path = Path(tempfile.mkdtemp(prefix="empty-store-")) / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def copy_empty_store(folder: Path) -> str:
    """An empty store at <folder>/mlflow.db; returns its URI."""
    shutil.copyfile(_empty_store(), folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


class Workspace:
    """A launch folder: runs started here land in <folder>/mlflow.db and <folder>/mlruns.
    The store starts as a copy of an empty one, unless `fresh` asks MLflow to create it."""

    def __init__(self, folder: Path, fresh: bool = False):
        self.folder = folder
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        if not fresh and not (folder / "mlflow.db").exists():
            copy_empty_store(folder)

    def train(self, *overrides: str) -> int:
        """The real `python -m experiments.train` in-process; returns its exit code."""
        from hydra.core.global_hydra import GlobalHydra

        from experiments import train

        argv = ["experiments.train", *overrides, f"hydra.run.dir={self.folder}/outputs/run"]
        multirun = "-m" in overrides or "--multirun" in overrides
        if multirun and not any(o.startswith("hydra.sweep.dir=") for o in overrides):
            argv.append(f"hydra.sweep.dir={self.folder}/multirun")
        old_argv, old_cwd = sys.argv, os.getcwd()
        sys.argv = argv
        os.chdir(self.folder)
        try:
            train.cli()
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
