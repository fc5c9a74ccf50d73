"""A Slurm job requeued mid-run (`scontrol requeue`, or preempted: submitit's own
checkpoint and requeue) continues its run from its last finished epoch in the same MLflow run: checkpoints are on
by default under the submitit launchers. On the test Slurm of .ci/slurm.sh; skipped, with
the reason, where none is up."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
from helpers.slurm import LAUNCHER, queued, slurm_absent
from helpers.sweeps import children, sweep_parent
from helpers.waiting import wait_for
from mlflow.tracking import MlflowClient

from experiments.core import names
from experiments.processes import child_environment

pytestmark = pytest.mark.slow
EPOCHS = 40
# Epochs long enough (a fraction of a second each) to requeue the job between two.
JOB = ["data=synthetic", "data.train_size=3000", "data.validation_size=200"]
JOB += ["data.test_size=200", f"training.epochs={EPOCHS}", "training.verbose=0"]
JOB += ["diagnostics.plots=false", "training.seed=1"]


def scontrol(*args: str) -> None:
    done = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("stop", ["scontrol requeue", "preempted"])
def test_a_requeued_slurm_job_continues_its_run(tmp_path, stop):
    """`scontrol requeue`: Slurm stops the job (SIGTERM, which submitit ignores, then
    SIGKILL) and queues it again. Preempted: Slurm's warning signal (SIGUSR2, as
    `signal_delay_s` before a preemption or the time limit sends it) makes submitit
    requeue the job itself and exit, which ends the run KILLED until it continues."""
    reason = slurm_absent()
    if reason:
        pytest.skip(reason)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    sweep = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", "-m", *LAUNCHER, *JOB],
        cwd=tmp_path,
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def checkpointed_run():
            for experiment in client.search_experiments():
                for run in client.search_runs([experiment.experiment_id]):
                    epochs = client.get_metric_history(run.info.run_id, "loss")
                    if names.CHECKPOINT_TAG in run.data.tags and len(epochs) >= 3:
                        return run
            return None

        first = wait_for(checkpointed_run, "the job's third epoch")
        job = first.data.tags["slurm_job"]
        if stop == "scontrol requeue":
            scontrol("requeue", job)
        else:
            signal = ["scancel", "--signal=USR2", job]
            assert subprocess.run(signal, capture_output=True, timeout=30).returncode == 0
        # Slurm holds a requeued job back for a while (BeginTime): let it start now.
        wait_for(lambda: "PENDING" in squeue_state(job), "the job back in the queue")
        scontrol("update", f"JobId={job}", "StartTime=now")
        output = sweep.communicate(timeout=300)[0]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, output[-3000:]

    parent = sweep_parent(client)
    (run,) = children(client, parent)  # the same run, continued: not a second one
    assert run.info.run_id == first.info.run_id and run.info.status == "FINISHED"
    assert int(run.data.tags[names.CONTINUATIONS_TAG]) >= 1
    assert int(run.data.tags[names.CONTINUED_FROM_TAG]) >= 2
    for key in run.data.metrics:
        steps = Counter(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert max(steps.values()) == 1, f"{key} has a step twice"
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in losses) == list(range(EPOCHS))
    assert parent.data.metrics["children_finished"] == 1
    assert names.CHECKPOINT_TAG not in run.data.tags
    assert queued() == ""


def squeue_state(job: str) -> str:
    done = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%T", f"--jobs={job}"],
        capture_output=True,
        text=True,
    )
    return done.stdout
