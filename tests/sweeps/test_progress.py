"""A sweep says how far it is as each job ends: k of N, the job, its status and value, the
best so far, elapsed time and an estimate, on stderr and on the parent run."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from experiments.core import names
from experiments.processes import child_environment
from experiments.sweeps import progress
from experiments.sweeps.progress import Ended

LINE = re.compile(
    r"^sweep: (\d+)(?: of (\d+))? ended: (?:job|trial \d+) .+ (FINISHED|FAILED|KILLED|SKIPPED)"
    r"(?:, val_accuracy [0-9.]+)?(?:; best so far [0-9.]+(?: \(trial \d+\))?)?; "
    r"elapsed \S+(?:, about \S+ left)?$"
)


@pytest.fixture
def started(tmp_path, monkeypatch):
    """A sweep of 4 jobs started 60 s ago, as the sweep callback starts one."""
    env = progress.start(tmp_path, 4, "sqlite:///unused.db")
    env[names.SWEEP_STARTED_ENV] = str(float(env[names.SWEEP_STARTED_ENV]) - 60)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(names.SWEEP_PARENT_ENV, raising=False)
    return tmp_path


def test_each_ended_job_is_one_line_with_count_best_and_estimate(started, capsys):
    lines = [
        progress.job_ended(Ended("relu", "FINISHED", 0.80)),
        progress.job_ended(Ended("tanh", "FAILED")),
        progress.job_ended(Ended("elu", "FINISHED", 0.85)),
        progress.job_ended(Ended("selu", "SKIPPED", 0.82)),
    ]
    assert capsys.readouterr().err.splitlines() == lines
    assert all(LINE.match(line) for line in lines), lines
    assert [LINE.match(line).group(1, 2) for line in lines] == [(str(k), "4") for k in range(1, 5)]
    assert "best so far" not in lines[0]  # one job: nothing to compare
    assert "best so far 0.8500" in lines[3] and "selu SKIPPED, val_accuracy 0.8200" in lines[3]
    # 60 s for 1 job of 4: about 3 minutes left; none after the last.
    assert lines[0].endswith("elapsed 1m00s, about 3m00s left")
    assert "left" not in lines[3]


def test_a_trial_is_named_by_its_number(started):
    progress.job_ended(Ended("lr=0.1", "FINISHED", 0.7, trial=0))
    line = progress.job_ended(Ended("lr=0.01", "KILLED", 0.6, trial=1))
    assert "ended: trial 1 lr=0.01 KILLED" in line and "best so far 0.7000 (trial 0)" in line


def test_outside_a_started_sweep_nothing_is_said(monkeypatch, capsys):
    for name in progress.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    assert progress.job_ended(Ended("relu", "FINISHED", 0.8)) is None
    assert capsys.readouterr().err == ""


# One job's end, as a job process says it (child processes, not forks of the test's
# process, which holds TensorFlow's threads and pytest-xdist's channel).
END_ONE = """
import sys
from experiments.sweeps import progress
print(progress.job_ended(progress.Ended(sys.argv[1], "FINISHED", 0.5)))
"""


def test_jobs_ending_at_once_in_other_processes_each_get_their_own_count(tmp_path):
    env = progress.start(tmp_path, 8, "sqlite:///unused.db")
    jobs = [
        subprocess.Popen([sys.executable, "-c", END_ONE, f"job{i}"], env=child_environment(**env),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for i in range(8)
    ]  # fmt: skip
    lines = [job.communicate(timeout=60)[0].strip() for job in jobs]
    counts = sorted(int(LINE.match(line).group(1)) for line in lines)
    assert counts == list(range(1, 9))


@pytest.mark.parametrize(
    "sweeper, overrides, jobs",
    [
        ({"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"},
         ["activation=relu,elu,selu", "training.seed=range(3)", "model=deep"], 9),
        ({"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
          "params": {"init": "he_normal,glorot_uniform"}}, ["activation=relu,elu"], 4),
        ({"_target_": "hydra_plugins.gradlab_optuna_sweeper.optuna_sweeper.OptunaSweeper",
          "n_trials": 12}, ["optimizer.learning_rate=interval(0.001,0.1)"], 12),
        ({"_target_": "some.other.Sweeper"}, ["activation=relu,elu"], None),
    ],
)  # fmt: skip
def test_the_sweeps_size_is_counted_as_its_sweeper_counts_it(sweeper, overrides, jobs):
    assert progress.planned_jobs(OmegaConf.create(sweeper), overrides) == jobs


@pytest.mark.parametrize(
    "seconds, said", [(0.4, "0s"), (42, "42s"), (185, "3m05s"), (7620, "2h07m")]
)
def test_durations_read_short(seconds, said):
    assert progress.duration(seconds) == said


@pytest.mark.xdist_group("small_sweep")
def test_the_parent_run_shows_the_last_progress_line(small_sweep):
    (parent,) = [r for r in small_sweep.runs() if r.data.tags.get("sweep") == "true"]
    line = parent.data.tags[names.SWEEP_PROGRESS_TAG]
    assert LINE.match(line) and line.startswith("sweep: 2 of 2 ended:"), line
    counted = (small_sweep.folder / "multirun" / progress.FILE).read_text().splitlines()
    assert len(counted) == 2
