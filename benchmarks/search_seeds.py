"""One seed a trial or three: the same 12-trial search of `optimizer.learning_rate` on
Fashion-MNIST (the default net, 5,000 training images, 3 epochs), once with
`seeds_per_trial=1` and once with 3, for a few sampler seeds. Prints, for each sampler
seed, the single-seed search's best value and whether it lies inside the 3-seed search's
best 95% interval, and the wall time of both.

Not part of `make bench` (minutes of real data): `python -m benchmarks.search_seeds`,
with FASHION_MNIST_DIR set; `--sampler-seeds 0 1 2` picks the repeats."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.processes import child_environment

N_TRIALS = 12
SEARCH = [
    "-m",
    "hydra/sweeper=gradlab_optuna",
    "hydra.sweeper.direction=maximize",
    f"hydra.sweeper.n_trials={N_TRIALS}",
    "++hydra.sweeper.params={optimizer.learning_rate:'tag(log, interval(0.001, 0.3))'}",
    "data.train_size=6000",
    "data.validation_size=1000",
    "training.epochs=3",
    "training.verbose=0",
    "diagnostics.enabled=false",
    "tracking.log_model=false",
]


def search(seeds: int, sampler_seed: int):
    """(best trial, wall seconds) of one search in a fresh folder."""
    import optuna

    with tempfile.TemporaryDirectory(prefix="search_seeds_") as name:
        folder = Path(name)
        command = [
            sys.executable,
            "-m",
            "experiments.train",
            *SEARCH,
            f"hydra.sweeper.seeds_per_trial={seeds}",
            f"hydra.sweeper.sampler.seed={sampler_seed}",
        ]
        started = time.perf_counter()
        done = subprocess.run(
            command, cwd=folder, env=child_environment(), capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"search failed ({seeds} seeds):\n{done.stderr[-3000:]}")
        study = optuna.load_study(study_name="train", storage=f"sqlite:///{folder / 'optuna.db'}")
        return study.best_trial, elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sampler-seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args(argv)
    if not os.environ.get("FASHION_MNIST_DIR"):
        print("FASHION_MNIST_DIR is not set: nothing measured")
        return
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{N_TRIALS}-trial search ({' '.join(SEARCH[4:])}); load {load}")
    inside = 0
    for sampler_seed in args.sampler_seeds:
        one, one_s = search(1, sampler_seed)
        three, three_s = search(3, sampler_seed)
        low, high = three.user_attrs["val_accuracy.interval"]
        hit = low <= one.value <= high
        inside += hit
        print(
            f"sampler seed {sampler_seed}: 1 seed: best {one.value:.4f} "
            f"(lr {one.params['optimizer.learning_rate']:.4g}) in {one_s:.0f} s; "
            f"3 seeds: best mean {three.value:.4f}, 95% interval [{low:.4f}, {high:.4f}] "
            f"(lr {three.params['optimizer.learning_rate']:.4g}) in {three_s:.0f} s; "
            f"single-seed best {'inside' if hit else 'outside'}"
        )
    print(
        f"single-seed best inside the 3-seed best's interval: {inside} of {len(args.sampler_seeds)}"
    )


if __name__ == "__main__":
    main()
