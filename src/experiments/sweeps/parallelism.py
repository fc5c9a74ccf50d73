"""Each parallel job's share of the CPU for TensorFlow's thread pools.

TensorFlow sizes its intra-op and inter-op pools to every core it sees, so n jobs side
by side would each start a full set of threads and fight over the cores. The share comes
from the launcher's own settings, which Hydra hands to every job, and is fixed before
TensorFlow's runtime starts: its pools are created once, on the first op.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

import joblib

log = logging.getLogger(__name__)

THREAD_ENV = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
# hydra_plugins.hydra_submitit_launcher.submitit_launcher.{SlurmLauncher,LocalLauncher}
SUBMITIT_LAUNCHERS = ("submitit_launcher.SlurmLauncher", "submitit_launcher.LocalLauncher")


def is_submitit(target: str) -> bool:
    """Whether a launcher (`hydra.launcher._target_`) is one of Hydra's submitit ones."""
    return target.endswith(SUBMITIT_LAUNCHERS)


def available_cores() -> int:
    """CPUs this process may use, as joblib counts them (loky's `cpu_count`): the fewest
    of the machine's cores, the process's affinity mask, a container's CPU quota (cgroup
    v1 or v2, rounded up to whole CPUs) and LOKY_MAX_CPU_COUNT. An affinity mask alone
    misses the quota: on a 64-core host with a 4-CPU quota each of 2 jobs would start 32
    threads. joblib resolves a negative n_jobs with this same count, so the number of
    jobs and each one's share agree."""
    return joblib.cpu_count()


def _joblib_parallel_jobs(n_jobs: int | None, cores: int) -> int:
    # joblib's convention: None is 1, -1 all cores, -2 all but one, ...
    if n_jobs is None or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)


def threads_per_job(launcher: Mapping[str, Any] | None, cores: int) -> int | None:
    """TensorFlow threads for one job of this launcher, or None when jobs run one at a
    time (the basic launcher) and TensorFlow may use every core.

    joblib runs n_jobs jobs at once on this machine: cores / n_jobs each, at least 1.
    Ray reserves `num_cpus` per task (1 unless hydra.launcher.ray.remote sets it) on
    whichever node runs it, and starts as many tasks as the node has CPUs: that many each.
    The submitit launchers (Slurm, local) give each job `cpus_per_task`. Unset, Slurm
    allocates a task one CPU; submitit's local executor ignores the key and starts every
    job at once, where one thread each is the share that cannot oversubscribe. Slurm
    without cgroups (task/none) does not bind a job to its CPUs, so the job's own core
    count would be the whole node's: the share comes from the config.
    """
    if not launcher:
        return None
    target = str(launcher.get("_target_", ""))
    if target.endswith("JoblibLauncher"):
        return max(1, cores // _joblib_parallel_jobs(launcher.get("n_jobs"), cores))
    if target.endswith("RayLauncher"):
        remote = (launcher.get("ray") or {}).get("remote") or {}
        return max(1, int(remote.get("num_cpus") or 1))
    if is_submitit(target):
        return max(1, int(launcher.get("cpus_per_task") or 1))
    return None


def limit_tensorflow_threads(threads: int) -> None:
    """Both TensorFlow pools to `threads`, before its runtime starts. Imports TensorFlow."""
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # A worker process reused for a later job of the same sweep: its runtime already
        # started with the share set by the first job, which is the same share.
        log.debug("TensorFlow already started; its thread pools stay as they are")


def share_for_launcher(launcher: Mapping[str, Any] | None) -> int | None:
    """This job's share (None: no limit, one job at a time), in the environment of the
    TensorFlow this process will start; nothing is imported yet, so a job that turns
    out to be skipped never pays for TensorFlow."""
    threads = threads_per_job(launcher, available_cores())
    if threads is not None:
        for name in THREAD_ENV:
            os.environ[name] = str(threads)
    return threads


def start_tensorflow(threads: int | None) -> dict[str, str]:
    """Imports TensorFlow with the job's share of threads; returns the pool sizes it
    actually uses as tags (0 is its default: every core)."""
    if threads is not None:
        limit_tensorflow_threads(threads)
    import tensorflow as tf

    return {
        "tf_intra_op_threads": str(tf.config.threading.get_intra_op_parallelism_threads()),
        "tf_inter_op_threads": str(tf.config.threading.get_inter_op_parallelism_threads()),
    }


def placement_tags() -> dict[str, str]:
    """Where a job runs beyond its host: the Ray node of a job the Ray launcher placed
    (several nodes may share a host, as a test cluster on one machine does); the Slurm
    job (array and task, as squeue and the .submitit folder name it) and node of a job
    Slurm ran."""
    env = os.environ
    if "SLURM_JOB_ID" in env:
        job = env["SLURM_JOB_ID"]
        if "SLURM_ARRAY_JOB_ID" in env:
            job = f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '')}"
        return {"slurm_job": job, "slurm_node": env.get("SLURMD_NODENAME", "")}
    ray = sys.modules.get("ray")  # imported by the launcher's worker, never here
    if ray is None or not ray.is_initialized():
        return {}
    return {"ray_node": ray.get_runtime_context().get_node_id()}
