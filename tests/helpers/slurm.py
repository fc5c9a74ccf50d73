"""The test Slurm that .ci/slurm.sh starts (GRADLAB_TEST_SLURM=1, SLURM_CONF), and what a
test needs to use it or to say why it cannot."""

from __future__ import annotations

import os
import shutil
import subprocess

SLURM_ENV = "GRADLAB_TEST_SLURM"
# A sweep's jobs on it: one CPU each, a time limit no test job reaches. Not less than an
# hour: submitit counts a SIGUSR2 in the last 20% (or 10 minutes) of the limit as the
# time limit (to requeue at most max_num_timeout times), not as a preemption.
LAUNCHER = ["hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1"]
LAUNCHER += ["hydra.launcher.timeout_min=60"]


def slurm_absent() -> str | None:
    """Why no test Slurm can run here, or None."""
    if shutil.which("sbatch") is None:
        return "Slurm is absent: no sbatch on PATH (Debian: slurm-client)"
    if not os.environ.get(SLURM_ENV):
        return f"{SLURM_ENV} is unset: no test Slurm started (source .ci/slurm.sh; slurm_start)"
    try:
        # sinfo retries a missing slurm.conf for a minute: 10 s is an answer.
        subprocess.run(["sinfo"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        said = (getattr(e, "stderr", None) or b"").decode(errors="replace").strip()
        return f"sinfo fails, Slurm does not answer: {said.splitlines()[0] if said else e}"
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        return "hydra-submitit-launcher is not installed (the slurm extra)"
    return None


def queued() -> str:
    """The jobs Slurm still holds (pending, running, completing, suspended)."""
    done = subprocess.run(
        ["squeue", "--noheader", "--states=PD,R,CG,S"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
