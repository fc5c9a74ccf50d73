"""The fixed cost of a job: a sweep of 20 one-epoch runs on synthetic data (Hydra's basic
launcher, the 2 cores to each job in turn), and the seconds per job spent outside
training: Hydra composing the job, the store's writes, the figures, the logged model,
the sweep's bookkeeping and its closing report. Target: <= 1.0 s per job.

Training is what the same run costs as plain Keras code: `model.fit` (the probe's passes
included: diagnostics have their own budget, benchmarks/bench_diagnostics.py) and the
test set's `model.evaluate`, timed around the lab's own calls of them. The sweep runs in
this process, as `gradlab-train -m` would, in a scratch folder. Per job = (wall time
from the second job's start to the sweep's end - its jobs' training) / (jobs - 1): the
first job imports TensorFlow, a one-off per process printed apart.
`GRADLAB_BENCH_REPEATS` sweeps (default 2) give the spread.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import print_ratio

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


class Clock:
    """When each job started, and the training inside it, from wrappers of the lab's
    own calls (the modules look them up at call time)."""

    def __init__(self) -> None:
        self.job_starts: list[float] = []
        self.training: list[float] = []

    def wrap(self, module, name: str, record) -> None:
        original = getattr(module, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                record(started, time.perf_counter())

        setattr(module, name, timed)


def one_sweep(folder: Path) -> dict[str, float]:
    from hydra.core.global_hydra import GlobalHydra

    from experiments import train
    from experiments.runs import execute
    from experiments.training import loop

    clock = Clock()
    saved = (loop.fit, loop.evaluate, execute.run)
    clock.wrap(loop, "fit", lambda a, b: clock.training.append(b - a))
    clock.wrap(loop, "evaluate", lambda a, b: clock.training.append(b - a))
    clock.wrap(execute, "run", lambda a, b: clock.job_starts.append(a))
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = ["gradlab-train", *SWEEP, f"hydra.sweep.dir={folder}/sweep"]
    os.chdir(folder)
    started = time.perf_counter()
    try:
        train.cli()
    except SystemExit as e:
        if e.code:
            raise
    finally:
        ended = time.perf_counter()
        loop.fit, loop.evaluate, execute.run = saved
        sys.argv = old_argv
        os.chdir(old_cwd)
        GlobalHydra.instance().clear()
    # The wrapper records a job's start when its run ends: sort, then the second start
    # is the first job's end as near as matters.
    starts = sorted(clock.job_starts)
    if len(starts) != JOBS or len(clock.training) != 2 * JOBS:
        raise SystemExit(f"expected {JOBS} jobs, timed {len(starts)}")
    later_training = sum(clock.training[2:])
    after_first = ended - starts[1]
    return {
        "wall": ended - started,
        "first_job": starts[1] - started,
        "per_job": (after_first - later_training) / (JOBS - 1),
        "training_per_job": later_training / (JOBS - 1),
    }


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    repeats = int(os.environ.get("GRADLAB_BENCH_REPEATS", "2"))
    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench_overhead_") as scratch:
            results.append(one_sweep(Path(scratch)))
    for key, label in (
        ("wall", f"sweep of {JOBS} one-epoch jobs, wall (s)"),
        ("first_job", "start and first job, TensorFlow's import (s)"),
        ("training_per_job", "training per job: fit + evaluate (s)"),
        ("per_job", "outside training per job (s)"),
    ):
        values = [r[key] for r in results]
        spread = f" (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"
        print(f"{label + ':':<46}{statistics.median(values):7.2f}{spread}")
    per_job = statistics.median(r["per_job"] for r in results)
    print_ratio("per job / target", per_job / TARGET_S, 1.0)


if __name__ == "__main__":
    main()
