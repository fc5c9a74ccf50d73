"""A 20-trial Optuna search on synthetic data, by one worker and by two workers on the
same study (two sweeper processes started together, as in two terminals), each worker
running its trials one at a time (basic launcher). Prints both wall times and their
ratio; the target on 2 cores is two workers <= 0.65 x one worker.

Each search starts in a fresh temporary folder whose MLflow store and Optuna study exist
already (made here, as a team's would), so the workers race on nothing but trials. With
two workers each gets half the cores for TensorFlow (TF_NUM_*_THREADS), as
docs/sweeps.md advises for workers sharing a machine."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import print_ratio
from experiments.processes import child_environment
from experiments.sweeps.parallelism import available_cores

TARGET_RATIO = 0.65
N_TRIALS = 20
# Several seconds of training a trial: training, not each worker's start-up and report,
# should dominate.
SEARCH = [
    "-m",
    "hydra/sweeper=gradlab_optuna",
    "hydra/sweeper/sampler=random",
    "hydra.sweeper.direction=maximize",
    f"hydra.sweeper.n_trials={N_TRIALS}",
    "++hydra.sweeper.params={optimizer.learning_rate:'tag(log, interval(0.01, 0.1))'}",
    "data=synthetic",
    "data.train_size=12000",
    "data.validation_size=500",
    "data.test_size=500",
    "training.epochs=3",
    "training.verbose=0",
    # The search, not each run's gradient probes and saved model, is what is measured.
    "diagnostics.enabled=false",
    "tracking.log_model=false",
]


def prepare(folder: Path) -> None:
    """The store and the study, made once before any worker starts."""
    import optuna
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    optuna.create_study(
        study_name="train", storage=f"sqlite:///{folder / 'optuna.db'}", direction="maximize"
    )


def timed_search(workers: int) -> float:
    threads = str(max(1, available_cores() // workers))
    env = child_environment(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads)
    with tempfile.TemporaryDirectory(prefix="bench_search_") as name:
        folder = Path(name)
        prepare(folder)
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "experiments.train", *SEARCH],
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(workers)
        ]
        outputs = [p.communicate()[0] for p in processes]
        elapsed = time.perf_counter() - started
        import optuna

        trials = optuna.load_study(
            study_name="train", storage=f"sqlite:///{folder / 'optuna.db'}"
        ).trials
    for process, output in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"a worker failed ({workers} workers):\n{output[-3000:]}")
    done = sum(t.state.name == "COMPLETE" for t in trials)
    print(f"  {workers} worker(s): {done} trials complete of {len(trials)}")
    return elapsed


def main() -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{N_TRIALS}-trial search ({' '.join(SEARCH[5:])}) on {available_cores()} cores; load {load}"
    )
    print("(other work on the machine distorts both times: compare only on a quiet machine)")
    one = timed_search(1)
    print(f"one worker:                           {one:6.1f} s")
    two = timed_search(2)
    print(f"two workers on one study:             {two:6.1f} s")
    print_ratio("ratio two / one", two / one, TARGET_RATIO)


if __name__ == "__main__":
    main()
