"""The transfer study with its default settings on the real Fashion-MNIST, over seeds:
test accuracy of baseline B and of B on A, the error-rate ratio, each phase's time.

    FASHION_MNIST_DIR=<folder> python -m benchmarks.bench_transfer_seeds [42,43,44]

Runs `python -m experiments.train -m experiment=transfer training.seed=...` (one sweep,
one study per seed) into a temporary store, or into $GRADLAB_BENCH_DIR if set (kept),
then prints one row per seed and the mean and spread. Each seed trains model A for 20
epochs on ~44k images: about a minute a seed on 2 CPU cores.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import data_dir, sweep_then_summarize

PROJECT_DIR = Path(__file__).resolve().parents[1]
SEEDS = "42,43,44"
SUMMARY = (
    "test_accuracy_A",
    "test_accuracy_baseline",
    "test_accuracy_transfer",
    "error_rate_ratio",
)
PHASES = ("pretrain_A", "baseline_B", "B_on_A")


def run_sweep(folder: Path, seeds: str) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PROJECT_DIR / "src"), env.get("PYTHONPATH")])
    )
    command = [
        sys.executable,
        "-m",
        "experiments.train",
        "-m",
        "experiment=transfer",
        f"training.seed={seeds}",
        f"data.dir={data_dir()}",
        "training.verbose=0",
        f"hydra.sweep.dir={folder}/multirun",
    ]
    subprocess.run(command, cwd=folder, env=env, check=True)


def summarize(uri: str) -> list[dict[str, float]]:
    """One row per study run of the latest sweep in the store: its summary metrics and phase durations (s)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("gradient-lab")
    sweeps = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.sweep = 'true'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    studies = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{sweeps[0].info.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    rows = []
    for study in studies:
        row = {"seed": float(study.data.tags["seed"])}
        row |= {k: study.data.metrics[k] for k in SUMMARY if k in study.data.metrics}
        for phase in PHASES:
            child = client.get_run(study.data.tags[f"run_id.{phase}"])
            row[f"{phase}_s"] = (child.info.end_time - child.info.start_time) / 1000
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, float]]) -> None:
    keys = ["seed", *SUMMARY, *(f"{p}_s" for p in PHASES)]
    print("  ".join(f"{k:>22}" for k in keys))
    for row in rows:
        print("  ".join(f"{row.get(k, float('nan')):>22.4f}" for k in keys))
    if len(rows) > 1:
        for name, fn in (("mean", statistics.mean), ("stdev", statistics.stdev)):
            values = [fn([r[k] for r in rows if k in r]) for k in keys[1:]]
            print(f"{name:>22}  " + "  ".join(f"{v:>22.4f}" for v in values))
        for k in SUMMARY:
            values = [r[k] for r in rows if k in r]
            print(f"{k}: min {min(values):.4f}, max {max(values):.4f}")


def main(seeds: str = SEEDS) -> None:
    sweep_then_summarize(run_sweep, lambda uri: print_table(summarize(uri)), seeds)


if __name__ == "__main__":
    main(*sys.argv[1:2])
