"""The fixed cost of a job: a sweep of 20 one-epoch runs on synthetic data (Hydra's basic
launcher, one process, the 2 cores to each job in turn), and the seconds per job spent
outside training: Hydra composing the job, the store's writes, the figures, the logged
model, the sweep's bookkeeping and its closing report. Target: <= 1.0 s per job.

Measured from the runs' own records: training is each run's `epoch_seconds` (Keras' fit
of the epoch, the probe's epoch-end pass included); everything else, the test evaluation
too, counts as overhead. Per job = (wall time from the first job's start to the sweep's end - the training) /
(jobs - 1), the first job left out (it imports TensorFlow: a one-off per process, printed
apart, as is the start before it). `GRADLAB_BENCH_REPEATS` sweeps (default 2) give the
spread.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import print_ratio
from experiments.processes import child_environment

JOBS = 20
TARGET_S = 1.0
SWEEP = [
    "-m",
    "data=synthetic",
    "training.epochs=1",
    "training.verbose=0",
    f"training.seed=range(0,{JOBS})",
    "tracking.experiment=overhead",
]


def one_sweep(folder: Path) -> dict[str, float]:
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "experiments.train", *SWEEP, f"hydra.sweep.dir={folder}/sweep"],
        cwd=folder,
        env=child_environment(),
        capture_output=True,
        text=True,
    )
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"the sweep failed ({done.returncode}):\n{done.stderr[-2000:]}")
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("overhead")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    children = sorted(
        (r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.info.start_time
    )
    if len(children) != JOBS or any(r.info.status != "FINISHED" for r in children):
        raise SystemExit(f"expected {JOBS} FINISHED runs, got {len(children)}")
    first, rest = children[0], children[1:]
    training = sum(r.data.metrics["epoch_seconds"] for r in rest)
    after_first = ended - rest[0].info.start_time / 1000
    first_wall = (first.info.end_time - first.info.start_time) / 1000
    return {
        "wall": ended - started,
        "start": first.info.start_time / 1000 - started,
        "first_job_outside_training": first_wall - first.data.metrics["epoch_seconds"],
        "per_job": (after_first - training) / len(rest),
        "training_per_job": training / len(rest),
    }


def main() -> None:
    repeats = int(os.environ.get("GRADLAB_BENCH_REPEATS", "2"))
    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench_overhead_") as scratch:
            results.append(one_sweep(Path(scratch)))
    for key, label in (
        ("wall", f"sweep of {JOBS} one-epoch jobs, wall (s)"),
        ("start", "start before the first job (s)"),
        ("first_job_outside_training", "first job outside training (s)"),
        ("training_per_job", "training per job (s)"),
        ("per_job", "outside training per job (s)"),
    ):
        values = [r[key] for r in results]
        spread = f" (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"
        print(f"{label + ':':<46}{statistics.median(values):7.2f}{spread}")
    print_ratio(
        "per job / target", statistics.median(r["per_job"] for r in results) / TARGET_S, 1.0
    )


if __name__ == "__main__":
    main()
