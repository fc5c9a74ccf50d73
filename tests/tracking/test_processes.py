"""Runs in child processes: a parallel joblib sweep on a fresh store, and a run stopped
by SIGTERM. Marked slow: each pays TensorFlow's start-up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from helpers.compose import FAST
from mlflow.tracking import MlflowClient

from experiments.processes import child_environment

pytestmark = pytest.mark.slow


def store(folder) -> tuple[MlflowClient, list]:
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("gradient-lab")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return client, runs


def test_joblib_sweep_on_a_fresh_store_loses_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.train", "-m", "hydra/launcher=joblib",
         "hydra.launcher.n_jobs=2", *FAST, "training.epochs=3", "activation=relu,selu"],
        cwd=tmp_path, env=child_environment(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client, runs = store(tmp_path)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].info.status == "FINISHED"
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
            steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, metric))
            assert steps == [0, 1, 2], (metric, steps)
        assert "test_accuracy" in child.data.metrics
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"config", "plots", "model_summary.txt"} <= names
        assert child.outputs.model_outputs  # the model is the run's Logged Model
    assert {c.data.params["activation.name"] for c in children} == {"relu", "selu"}


def test_sigterm_ends_the_run_killed_and_keeps_what_was_logged(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", *FAST, "training.epochs=100000",
         "data.train_size=4000"],
        cwd=tmp_path, env=child_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        run = None
        while time.monotonic() < deadline:
            time.sleep(1.0)
            try:  # the child may still be creating the store's tables
                _, runs = store(tmp_path) if (tmp_path / "mlflow.db").exists() else (None, [])
            except Exception:  # noqa: BLE001
                continue
            if runs and runs[0].data.metrics.get("loss") is not None:
                run = runs[0]
                break
        assert run is not None, "no epoch was logged in time"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    client, (run,) = store(tmp_path)
    assert run.info.status == "KILLED"
    assert "SIGTERM" in run.data.tags["failure_reason"]
    assert len(client.get_metric_history(run.info.run_id, "loss")) >= 1
