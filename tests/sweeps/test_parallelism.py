"""Each parallel job's share of the cores, read from the real launcher configs; what an
optimizing sweeper sees of an exploded run."""

from __future__ import annotations

import math

import pytest
from helpers.compose import compose

import experiments.config.schema  # noqa: F401  (stores the config schema that compose needs)
from experiments.sweeps.objective import WORST_SCORE, objective
from experiments.sweeps.parallelism import threads_per_job


def launcher(*overrides: str):
    return compose(list(overrides), return_hydra_config=True).hydra.launcher


@pytest.mark.parametrize(
    ("n_jobs", "cores", "threads"),
    [(2, 2, 1), (2, 8, 4), (4, 2, 1), (3, 16, 5), (-1, 8, 1), (-2, 8, 1), (-5, 8, 2)],
)
def test_joblib_jobs_share_the_cores(n_jobs, cores, threads):
    cfg = launcher("hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}")
    assert threads_per_job(cfg, cores) == threads


def test_joblib_default_runs_one_job_per_core():
    assert threads_per_job(launcher("hydra/launcher=joblib"), 8) == 1


def test_ray_jobs_use_the_cpus_ray_reserves_for_them():
    assert threads_per_job(launcher("hydra/launcher=ray"), 8) == 1
    reserved = launcher("hydra/launcher=ray", "+hydra.launcher.ray.remote.num_cpus=3")
    assert threads_per_job(reserved, 8) == 3


def test_one_job_at_a_time_keeps_every_core():
    assert threads_per_job(launcher(), 8) is None


@pytest.mark.parametrize(
    ("value", "expected"), [(0.75, 0.75), (0.0, 0.0), (None, WORST_SCORE), (math.nan, WORST_SCORE)]
)
def test_an_exploded_run_is_the_worst_value(value, expected):
    assert objective(value) == expected
    assert WORST_SCORE < 0.0  # below every accuracy, and finite for the sampler
