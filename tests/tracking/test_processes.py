"""A run in a child process stopped by SIGTERM (a parallel sweep on a fresh store is
tests/sweeps/test_launchers.py's load sweep). Marked slow: it pays TensorFlow's start-up."""

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


def test_sigterm_ends_the_run_killed_and_keeps_what_was_logged(tmp_path):
    log = tmp_path / "train.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "experiments.train", *FAST, "training.epochs=100000",
             "data.train_size=4000"],
            cwd=tmp_path, env=child_environment(), stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        run = None
        while run is None and time.monotonic() < deadline:
            time.sleep(1.0)
            assert process.poll() is None, log.read_text()[-3000:]
            # Only once the child has opened its run: a reader that opened the store
            # while the child creates its tables would race it.
            if "MLflow run" in log.read_text():
                _, runs = store(tmp_path)
                if runs and runs[0].data.metrics.get("loss") is not None:
                    run = runs[0]
        assert run is not None, "no epoch was logged in time: " + log.read_text()[-3000:]
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
