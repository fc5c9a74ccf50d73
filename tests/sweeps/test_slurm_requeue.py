"""Slurm jobs requeued mid-run continue their runs from their last finished epoch in the
same MLflow runs (checkpoints are on by default under the submitit launchers): one job
requeued with `scontrol requeue` (Slurm stops it, SIGTERM that submitit ignores, then
SIGKILL, and queues it again), one preempted (Slurm's warning signal, SIGUSR2, as it
comes `signal_delay_s` before a preemption: submitit requeues the job itself and exits,
and the run ends KILLED until it continues). Both in one sweep of two jobs side by side,
on the test Slurm of .ci/slurm.sh; skipped, with the reason, where none is up."""

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
# Epochs long enough (a fraction of a second each) to requeue a job between two.
JOBS = ["data=synthetic", "data.train_size=3000", "data.validation_size=200"]
JOBS += ["data.test_size=200", f"training.epochs={EPOCHS}", "training.verbose=0"]
JOBS += ["diagnostics.plots=false", "training.seed=1,2"]
# How each seed's job is stopped.
STOPS = {"1": ["scontrol", "requeue"], "2": ["scancel", "--signal=USR2"]}


def run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_requeued_and_preempted_slurm_jobs_continue_their_runs(tmp_path):
    reason = slurm_absent()
    if reason:
        pytest.skip(reason)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    sweep = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", "-m", *LAUNCHER, *JOBS],
        cwd=tmp_path,
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def both_checkpointed():
            found = {}
            for experiment in client.search_experiments():
                for r in client.search_runs([experiment.experiment_id]):
                    epochs = client.get_metric_history(r.info.run_id, "loss")
                    if names.CHECKPOINT_TAG in r.data.tags and len(epochs) >= 3:
                        found[r.data.params["training.seed"]] = r
            return found if len(found) == 2 else None

        first = wait_for(both_checkpointed, "both jobs' third epoch")
        jobs = {seed: run.data.tags["slurm_job"] for seed, run in first.items()}
        for seed, job in jobs.items():
            run(*STOPS[seed], job)

        def pending(job: str) -> bool:
            state = run("squeue", "--noheader", "--states=all", "--format=%T", f"--jobs={job}")
            return "PENDING" in state

        # Slurm holds a requeued job back for a while (BeginTime): let each start now.
        for job in jobs.values():
            wait_for(lambda job=job: pending(job), f"job {job} back in the queue")
            run("scontrol", "update", f"JobId={job}", "StartTime=now")
        output = sweep.communicate(timeout=300)[0]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, output[-3000:]

    parent = sweep_parent(client)
    runs = {r.data.params["training.seed"]: r for r in children(client, parent)}
    assert set(runs) == {"1", "2"}  # the same two runs, continued: no third
    for seed, run_ in runs.items():
        assert run_.info.run_id == first[seed].info.run_id and run_.info.status == "FINISHED"
        assert int(run_.data.tags[names.CONTINUATIONS_TAG]) >= 1, seed
        assert int(run_.data.tags[names.CONTINUED_FROM_TAG]) >= 3, seed
        for key in run_.data.metrics:
            steps = Counter(m.step for m in client.get_metric_history(run_.info.run_id, key))
            assert max(steps.values()) == 1, f"seed {seed}: {key} has a step twice"
        losses = client.get_metric_history(run_.info.run_id, "loss")
        assert sorted(m.step for m in losses) == list(range(EPOCHS))
        assert names.CHECKPOINT_TAG not in run_.data.tags
    assert parent.data.metrics["children_finished"] == 2
    assert queued() == ""
