"""Each parallel job's share of the cores, read from the real launcher configs; what an
optimizing sweeper sees of an exploded run."""

from __future__ import annotations

import math
import os

import pytest
from helpers.compose import compose
from joblib.externals.loky.backend import context as loky_context

import experiments.config.schema  # noqa: F401  (stores the config schema that compose needs)
from experiments.sweeps.objective import WORST_SCORE, objective
from experiments.sweeps.parallelism import (
    THREAD_ENV,
    available_cores,
    share_for_launcher,
    threads_per_job,
)

CGROUP = "/sys/fs/cgroup/"
# Where cgroup v2 shows a container's CPU quota ("max" when none), read by loky.
CPU_MAX = CGROUP + "cpu.max"


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


@pytest.mark.parametrize("name", ["submitit_slurm", "submitit_local"])
def test_submitit_jobs_use_the_cpus_of_their_task(name):
    # Unset: the one CPU Slurm allocates a task (the local executor starts all at once).
    assert threads_per_job(launcher(f"hydra/launcher={name}"), 64) == 1
    reserved = launcher(f"hydra/launcher={name}", "hydra.launcher.cpus_per_task=4")
    # The task's CPUs, not the node's: without cgroups a job sees every core.
    assert threads_per_job(reserved, 64) == 4
    assert threads_per_job(reserved, 2) == 4


def test_one_job_at_a_time_keeps_every_core():
    assert threads_per_job(launcher(), 8) is None


@pytest.fixture
def host_of_64_cores(monkeypatch):
    """A 64-core host this process may run anywhere on, with no quota and no
    LOKY_MAX_CPU_COUNT; the share a test computes is set in an environment restored after."""
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.delenv("LOKY_MAX_CPU_COUNT", raising=False)
    real_exists = os.path.exists
    # No cgroup files, v1 or v2: this machine's own quota, if any, stays out of the test.
    monkeypatch.setattr(
        os.path, "exists", lambda path: not str(path).startswith(CGROUP) and real_exists(path)
    )
    for name in THREAD_ENV:
        monkeypatch.setenv(name, "")


def cpu_quota(monkeypatch, tmp_path, cpus: float) -> None:
    """A container's CPU quota of `cpus`, shown as the kernel shows it (quota and period
    in microseconds) in the file loky reads."""
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(f"{round(cpus * 100_000)} 100000\n")
    real_exists, real_open = os.path.exists, open
    monkeypatch.setattr(os.path, "exists", lambda path: path == CPU_MAX or real_exists(path))
    monkeypatch.setattr(
        loky_context,
        "open",
        lambda path, *args, **kwargs: real_open(
            cpu_max if path == CPU_MAX else path, *args, **kwargs
        ),
        raising=False,
    )


@pytest.mark.parametrize(("cpus", "n_jobs", "threads"), [(4, 2, 2), (4, -1, 1), (2.5, 1, 3)])
def test_a_containers_cpu_quota_bounds_each_jobs_share(
    host_of_64_cores, monkeypatch, tmp_path, cpus, n_jobs, threads
):
    """64 cores visible, a quota of 4 CPUs: 2 jobs get 2 threads each, not 32."""
    cpu_quota(monkeypatch, tmp_path, cpus)
    assert available_cores() == math.ceil(cpus)
    cfg = launcher("hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}")
    assert share_for_launcher(cfg) == threads
    assert all(os.environ[name] == str(threads) for name in THREAD_ENV)


def test_loky_max_cpu_count_and_the_affinity_mask_bound_the_share(host_of_64_cores, monkeypatch):
    cfg = launcher("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert share_for_launcher(cfg) == 32  # the whole host, nothing bounds it
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "6")
    assert share_for_launcher(cfg) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert share_for_launcher(cfg) == 2


@pytest.mark.parametrize(
    ("value", "expected"), [(0.75, 0.75), (0.0, 0.0), (None, WORST_SCORE), (math.nan, WORST_SCORE)]
)
def test_an_exploded_run_is_the_worst_value(value, expected):
    assert objective(value) == expected
    assert WORST_SCORE < 0.0  # below every accuracy, and finite for the sampler
