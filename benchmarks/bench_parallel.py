"""The same sweep of 4 short runs, one job at a time (Hydra's basic launcher) and two at
a time (hydra/launcher=joblib, n_jobs=2, each job limited to its share of the cores).
Prints both wall times and their ratio; the target on 2 cores is parallel <= 0.65 x
sequential. Each sweep is a fresh `python -m experiments.train -m` in a temporary launch
folder, so both pay their own start-up (one TensorFlow import sequentially, one per
worker in parallel)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import print_ratio
from experiments.processes import child_environment

TARGET_RATIO = 0.65
# Four runs of about ten seconds of training each (on 2 quiet cores), on synthetic data:
# long enough that training, not start-up, dominates.
SWEEP = [
    "data=synthetic",
    "data.train_size=32000",
    "data.validation_size=2000",
    "data.test_size=1000",
    "training.epochs=10",
    "training.verbose=0",
    "optimizer.learning_rate=0.05",
    "training.seed=1,2,3,4",
]
PARALLEL = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def timed_sweep(extra: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="bench_parallel_") as folder:
        command = [sys.executable, "-m", "experiments.train", "-m", *SWEEP, *extra]
        started = time.perf_counter()
        done = subprocess.run(
            command, cwd=folder, env=child_environment(), capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"sweep failed ({' '.join(extra) or 'sequential'}):\n{done.stderr[-3000:]}"
        )
    return elapsed


def main() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"4 runs ({' '.join(SWEEP)}) on {cores} cores; load average {load}")
    print("(other work on the machine distorts both times: compare only on a quiet machine)")
    sequential = timed_sweep([])
    print(f"sequential (basic launcher):          {sequential:6.1f} s")
    parallel = timed_sweep(PARALLEL)
    print(f"parallel (joblib, n_jobs=2):          {parallel:6.1f} s")
    print_ratio("ratio parallel / sequential", parallel / sequential, TARGET_RATIO)


if __name__ == "__main__":
    main()
