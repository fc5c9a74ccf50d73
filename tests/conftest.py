"""Shared fixtures: Hydra composition without TensorFlow, in-process runs of the real
entry point into a temporary MLflow store, and the real data when it is available."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_DIR / "conf"
# Small, quick runs on the synthetic set; a learning rate that learns it in a few epochs.
FAST = [
    "data=synthetic",
    "training.epochs=2",
    "training.verbose=0",
    "optimizer.learning_rate=0.05",
]


@pytest.fixture(autouse=True)
def _isolated_tracking(monkeypatch):
    """No test writes into a store named by the caller's environment."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")


def compose(overrides: list[str] | None = None, return_hydra_config: bool = False):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(
            "config", overrides=list(overrides or []), return_hydra_config=return_hydra_config
        )


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


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    folder = os.environ.get("FASHION_MNIST_DIR")
    if not folder or not (Path(folder) / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("real Fashion-MNIST not available: set FASHION_MNIST_DIR to its IDX folder")
    return Path(folder)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child `python -m experiments...`: this checkout's code first, no
    tracking URI inherited from the caller, quiet TensorFlow."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PROJECT_DIR / "src"), env.get("PYTHONPATH")])
    )
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra)
    return env
