"""One Optuna study in a SQLite file, worked on by two sweeper processes: a worker
started on a study with trials continues it to its total, the two share trials without
running one twice, and the trial of a worker killed mid-trial is failed and retried by
the other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers.sweeps import OPTUNA, TINY, optuna_study, search_params, trial_runs
from helpers.workspace import Workspace

from experiments.processes import child_environment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("study_workers")]

N_TRIALS = 8
SEARCH = [
    *OPTUNA,
    # Unseeded: workers started together with one seed would propose the same points.
    "hydra/sweeper/sampler=random",
    f"hydra.sweeper.n_trials={N_TRIALS}",
    # A worker that stops beating for 2 s has died: its trial is failed and retried.
    "hydra.sweeper.heartbeat_interval=1",
    search_params(**{"optimizer.learning_rate": "tag(log, interval(0.01, 0.1))"}),
    "diagnostics.plots=false",
    *(o for o in TINY if not o.startswith("optimizer.learning_rate=")),
]

# The first worker's trials: more epochs, the same points (the study's parameters).
SLOW_TRIALS = ["training.epochs=12"]


def start_worker(folder, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.train", *SEARCH, *extra],
        cwd=folder,
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killed as one
    )


def wait_for(condition, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001  (the study may not exist yet)
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def states(storage: str) -> list[str]:
    return [t.state.name for t in optuna_study(storage).trials]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two workers on one study: one in a child process, started first, and one in this
    process, started once the first has finished a trial. The first is killed (SIGKILL)
    while it runs a trial, once the second has finished one too; the second finishes the
    study, the dead worker's trial included."""
    workspace = Workspace(tmp_path_factory.mktemp("study_workers"))  # the store exists
    storage = f"sqlite:///{workspace.folder / 'optuna.db'}"
    # Its trials train longer (SLOW_TRIALS), so that it is still in the trial seen RUNNING
    # when the kill lands: a trial of TINY's length could end, and be told COMPLETE, in
    # between, and the kill would leave no trial to retry.
    first = start_worker(workspace.folder, *SLOW_TRIALS)
    killed = threading.Event()

    def kill_first_mid_trial() -> None:
        def ready() -> bool:
            runs = trial_runs(workspace.client())
            parents = {r.data.tags["mlflow.parentRunId"] for rs in runs.values() for r in rs
                       if r.info.status == "FINISHED"}  # fmt: skip
            running = [r for rs in runs.values() for r in rs if r.info.status == "RUNNING"]
            return len(parents) == 2 and any(
                r.data.tags["mlflow.parentRunId"] in firsts for r in running
            )

        # The first worker's parent run, made before this process starts its own.
        firsts = {r.info.run_id for r in workspace.runs() if r.data.tags.get("sweep") == "true"}
        try:
            wait_for(ready, "both workers' trials")
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            killed.set()

    try:
        wait_for(lambda: "COMPLETE" in states(storage), "the first worker's first trial")
        watcher = threading.Thread(target=kill_first_mid_trial, daemon=True)
        watcher.start()
        assert workspace.train(*SEARCH) == 0
        watcher.join(timeout=60)
        assert killed.is_set()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=60)
    return workspace, storage


def test_a_dead_workers_trial_is_retried_and_the_study_reaches_its_total(study):
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    workspace, storage = study
    trials = optuna_study(storage).trials
    lost = [t for t in trials if t.state.name == "FAIL"]
    assert len(lost) == 1, [(t.number, t.state.name) for t in trials]
    retries = [
        t
        for t in trials
        if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == lost[0].number
    ]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == lost[0].params  # the same point, run again
    # n_trials is the study's total, the first worker's finished trials included.
    assert [t.state.name for t in trials].count("COMPLETE") == N_TRIALS
    assert len(trials) == N_TRIALS + 1


def test_two_workers_share_the_study_without_running_a_trial_twice(study):
    workspace, storage = study
    client = workspace.client()
    runs = trial_runs(client)
    complete = {t.number for t in optuna_study(storage).trials if t.state.name == "COMPLETE"}
    finished = {n: [r for r in rs if r.info.status == "FINISHED"] for n, rs in runs.items()}
    # Every finished trial has exactly one finished MLflow run, and nothing else finished.
    assert {n for n, rs in finished.items() if rs} == complete
    assert all(len(rs) <= 1 for rs in finished.values())
    # Both workers ran trials, each under its own parent run.
    parents = {}
    for number in complete:
        (run,) = finished[number]
        parents.setdefault(run.data.tags["mlflow.parentRunId"], []).append(number)
    assert len(parents) == 2, parents
    values = {t.number: t.value for t in optuna_study(storage).trials if t.number in complete}
    for number in complete:
        assert finished[number][0].data.metrics["val_accuracy"] == pytest.approx(values[number])
