"""The issue's case, with a real process: a 4-epoch run killed (SIGKILL: nothing of it
runs after) once its second epoch is done, then launched again with the same config,
continues the same MLflow run and ends with the result of a run that was never killed."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.continued import assert_same_training
from helpers.sweeps import TINY
from helpers.workspace import Workspace

from experiments.core import names
from experiments.processes import child_environment

pytestmark = pytest.mark.slow

RUN = [*TINY, "training.epochs=4", "training.verbose=2", "training.checkpoint=true"]


def train(folder: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.train", *RUN, *overrides],
        cwd=folder,
        env=child_environment(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_when(process: subprocess.Popen, line_start: str, timeout: float = 240) -> str:
    """SIGKILL the process as soon as it prints a line starting with `line_start`."""
    seen = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        seen.append(line)
        if line.startswith(line_start):
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return "".join(seen)
        assert time.monotonic() < deadline, "".join(seen)
    raise AssertionError(f"the run ended before {line_start!r}:\n{''.join(seen)}")


def test_a_killed_run_continues_in_the_same_run_with_the_uninterrupted_result(tmp_path):
    workspace = Workspace(tmp_path)
    straight = train(tmp_path, "tracking.experiment=straight")
    first = train(tmp_path)
    # Keras says "Epoch 3/4" once epoch 2's callbacks, the checkpoint's among them, are done.
    kill_when(first, "Epoch 3/4")
    assert straight.wait(timeout=240) == 0
    (killed,) = workspace.runs()
    assert killed.info.status == "RUNNING"  # nothing closed it: its process is gone

    again = train(tmp_path)
    output = again.communicate(timeout=240)[0]
    assert again.returncode == 0, output[-3000:]
    assert "continuing run" in output and "after epoch 2" in output
    (continued,) = workspace.runs()
    assert continued.info.run_id == killed.info.run_id and continued.info.status == "FINISHED"
    assert continued.data.tags[names.CONTINUED_FROM_TAG] == "2"
    # Launched again, Hydra gave it a new folder; it went on in its own.
    folder = Path(continued.data.tags[names.OUTPUT_DIR_TAG])
    assert folder == Path(killed.data.tags[names.OUTPUT_DIR_TAG])
    with open(folder / "history.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2, 3]
    assert_same_training(workspace.client(), continued, workspace.runs("straight")[0])
