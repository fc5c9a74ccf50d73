"""Faults of an Optuna search (issue 17): a trial left RUNNING by a worker that died
before its first heartbeat, a heartbeat the database refuses, a search of no trials, a
study database that cannot be written."""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager

import optuna
import pytest
from helpers.sweeps import OPTUNA, TINY, optuna_study, search_params, sweep_parent
from optuna.distributions import FloatDistribution
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hydra_plugins.gradlab_optuna_sweeper._impl import Heartbeat, StudySweep
from hydra_plugins.gradlab_optuna_sweeper._storage import open_storage

# The sweeper uses Optuna's heartbeats outside study.optimize on purpose (see _storage.quiet).
pytestmark = pytest.mark.filterwarnings(
    "ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage:UserWarning"
)

SEARCH = [
    *OPTUNA,
    "hydra.sweeper.n_trials=1",
    search_params(**{"optimizer.learning_rate": "choice(0.05, 0.1)"}),
    *(o for o in TINY if not o.startswith(("optimizer.learning_rate=", "training.epochs="))),
    "training.epochs=1",
    "diagnostics.plots=false",
]


class Hung(Exception):
    """The code under test waited past the test's deadline."""


@contextmanager
def deadline(seconds: float):
    """Fails the test, rather than hanging it, when the block waits too long."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: no deadline
        return

    def expire(signum, frame):
        raise Hung(f"still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def orphan(storage: str) -> None:
    """A trial left RUNNING without a heartbeat row, as by a worker killed (SIGKILL)
    between asking for it and its first beat."""
    optuna.create_study(study_name="gradient-lab", storage=storage, direction="maximize").ask()


def test_a_trial_that_never_beat_is_failed_once_older_than_the_grace_period(tmp_path):
    """Optuna's stale check passes over a RUNNING trial without a heartbeat row; the
    sweeper's fails it (and queues its retry) once it started over 2 heartbeat intervals
    ago, and not before: a live worker beats for a trial right after asking for it."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(url, heartbeat_interval=1, max_retry=3)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    lost = study.ask({"x": FloatDistribution(0.0, 1.0)})
    alive = study.ask({"x": FloatDistribution(0.0, 1.0)})
    StudySweep._fail_stale(study)  # both just asked: neither is failed yet
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING] * 2

    time.sleep(2.2)  # the grace period: 2 x heartbeat_interval
    storage.record_heartbeat(alive._trial_id)  # its worker beats: as old, but alive
    StudySweep._fail_stale(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[2]) == lost.number
    assert trials[2].params == trials[0].params  # the same point, asked again


def test_a_refused_heartbeat_is_a_warning_once(tmp_path, caplog):
    """A database that refuses every beat is said once, at warning level (other workers
    will fail the trial), not at debug level, nor once every beat."""
    path = tmp_path / "optuna.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{path}")
    trial_id = study.ask()._trial_id
    # SQLite opened read-only refuses the write, as it does for a user's read-only file.
    storage = open_storage(f"sqlite:///file:{path}?mode=ro&uri=true", heartbeat_interval=1)
    caplog.set_level(logging.DEBUG, logger="hydra_plugins.gradlab_optuna_sweeper")
    with Heartbeat(storage, [trial_id]):
        time.sleep(2.3)  # three beats: at once, after 1 s, after 2 s
    misses = [r for r in caplog.records if "heartbeat of trial" in r.getMessage()]
    assert len(misses) == 3, [r.getMessage() for r in misses]
    assert [r.levelno for r in misses] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "readonly database" in misses[0].getMessage()


@pytest.mark.parametrize(("max_retry", "retried"), [(None, True), (0, False)])
def test_a_stopped_batch_fails_its_trials_and_retries_them_as_the_storage_does(
    tmp_path, max_retry, retried
):
    """Ctrl-C during a batch: its unfinished trials are failed and queued again by the
    storage's own stale-trial callback, with its max_retry; a finished one stays."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(url, heartbeat_interval=1, max_retry=max_retry)
    study = optuna.create_study(storage=storage)
    trials = [study.ask({"x": FloatDistribution(0.0, 1.0)}) for _ in range(2)]
    study.tell(trials[0], 1.0)
    with pytest.raises(KeyboardInterrupt), StudySweep._retry_if_stopped(study, storage, trials):
        raise KeyboardInterrupt
    found = study.get_trials()
    assert [t.state for t in found[:2]] == [TrialState.COMPLETE, TrialState.FAIL]
    assert len(found) == (3 if retried else 2)
    if retried:
        assert found[2].state == TrialState.WAITING
        assert RetryHeartbeatStaleTrialCallback.retried_trial_number(found[2]) == 1


@pytest.mark.slow
def test_a_resumed_search_fails_the_trial_of_a_dead_worker_and_finishes(workspace):
    """The issue's case: a trial asked and never beaten (its worker killed) holds the
    study's only slot; the search fails it after the grace period, runs its retry and
    ends, instead of waiting for it forever."""
    storage = f"sqlite:///{workspace.folder / 'optuna.db'}"
    orphan(storage)
    started = time.monotonic()
    with deadline(90):
        code = workspace.train(*SEARCH, "hydra.sweeper.heartbeat_interval=1")
    took = time.monotonic() - started
    assert code == 0
    trials = optuna_study(storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[1]) == 0
    # The orphan was failed 2 s (2 x heartbeat_interval) after its start.
    failed_after = (trials[1].datetime_start - trials[0].datetime_start).total_seconds()
    assert 2 <= failed_after < 10, (failed_after, took)


@pytest.mark.parametrize("n_trials", [0, -3])
def test_a_search_of_no_trials_is_refused_in_one_line(workspace, capsys, n_trials):
    args = [a for a in SEARCH if not a.startswith("hydra.sweeper.n_trials=")]
    code = workspace.train(*args, f"hydra.sweeper.n_trials={n_trials}")
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        f"error: hydra.sweeper.n_trials={n_trials} is not allowed: must be >= 1"
    )
    assert not (workspace.folder / "optuna.db").exists()  # no study was opened


def test_a_search_space_the_sampler_cannot_draw_from_is_one_line(workspace, capsys):
    code = workspace.train(
        *SEARCH, "hydra/sweeper/sampler=grid", search_params(**{"init": "interval(0, 1)"})
    )
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        "error: init: the grid sampler needs choice(...) or range(...), not an interval"
    )


def test_a_read_only_study_database_is_one_line(workspace, capsys):
    """SQLite opened read-only (`mode=ro`) refuses writes as a user's read-only file
    does: the search stops with one line naming the storage and what to do."""
    path = workspace.folder / "optuna.db"
    optuna.create_study(study_name="gradient-lab", storage=f"sqlite:///{path}")
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    code = workspace.train(*SEARCH, f"hydra.sweeper.storage='{url}'")
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    reason = (
        f"Optuna storage {url} failed (attempt to write a readonly database): make "
        f"{path} and its folder writable, or set hydra.sweeper.storage to another database"
    )
    parent = sweep_parent(workspace.client())
    assert errors == [f"error: {reason}; sweep run {parent.info.run_id} ended FAILED"]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["failure_reason"] == reason
