"""Ctrl-C, for real: a SIGINT to a running sweep ends in one line and exit code 130, the
job's run KILLED with the reason `interrupted (SIGINT)`, the sweep's parent run KILLED
with the counts so far."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from helpers.sweeps import TINY

from experiments.processes import child_environment

pytestmark = pytest.mark.slow


def test_ctrl_c_on_a_sweep_ends_its_runs_killed_in_one_line(workspace):
    sweep = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", "-m", *TINY, "data.train_size=4000",
         "training.epochs=1,100000"],
        cwd=workspace.folder, env=child_environment(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                runs = workspace.runs()
            except Exception:  # noqa: BLE001 - the store may still be in the making
                continue
            # The first job has finished and the second has trained an epoch.
            statuses = {r.info.status for r in runs if "loss" in r.data.metrics}
            if statuses == {"FINISHED", "RUNNING"}:
                break
        else:
            pytest.fail("the second job never trained an epoch")
        sweep.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, err = sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("I0000")]
    assert "Traceback" not in err
    (parent,) = [r for r in workspace.runs() if r.data.tags.get("sweep") == "true"]
    assert lines[-1] == f"error: interrupted (SIGINT); sweep run {parent.info.run_id} ended KILLED"
    children = {
        r.data.params["training.epochs"]: r
        for r in workspace.runs()
        if r.info.run_id != parent.info.run_id
    }
    assert children["1"].info.status == "FINISHED"
    assert children["100000"].info.status == "KILLED"
    assert children["100000"].data.tags["failure_reason"] == "interrupted (SIGINT)"
    assert parent.info.status == "KILLED"
    assert parent.data.metrics["children_finished"] == 1
    assert parent.data.metrics["children_killed"] == 1
