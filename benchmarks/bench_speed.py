"""Entry point versus the reference notebook's own code, same model, same data, one run.

Prints seconds per epoch for each, their ratio (target <= 0.6) and both validation
accuracies (target: equal within 0.005); then the start-up time of config-only commands,
which must not import TensorFlow (target <= 2 s). BENCH_EPOCHS sets the epochs (3).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import data_dir, python


def _entry_point(folder: Path, epochs: int, work: Path) -> dict:
    from mlflow.tracking import MlflowClient

    result = python("-m", "experiments.train", f"data.dir={folder}", f"training.epochs={epochs}",
                    "training.verbose=0", "tracking.experiment=bench-speed", cwd=work)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bench-speed")
    (run,) = client.search_runs([experiment.experiment_id])

    def series(metric: str) -> list[float]:
        return [
            m.value
            for m in sorted(
                client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step
            )
        ]

    return {"epoch_seconds": series("epoch_seconds"), "val_accuracy": series("val_accuracy")}


def _reference(folder: Path, epochs: int, work: Path) -> dict:
    result = python("-m", "benchmarks.notebook_reference", str(folder), str(epochs), cwd=work)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def _config_only_seconds(work: Path) -> dict[str, float]:
    commands = {
        "--help": ["--help"],
        "--cfg job": ["--cfg", "job"],
        "invalid value": ["training.batch_size=0"],
    }
    timings = {}
    for label, args in commands.items():
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            python("-m", "experiments.train", *args, cwd=work)
            best = min(best, time.perf_counter() - started)
        timings[label] = best
    return timings


def main() -> None:
    epochs = int(os.environ.get("BENCH_EPOCHS", "3"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for label, seconds in _config_only_seconds(work).items():
            print(f"config-only `{label}`: {seconds:.2f} s (best of 3, target <= 2 s)")
        folder = data_dir()
        if folder is None:
            print("speed: skipped, Fashion-MNIST not found (set FASHION_MNIST_DIR)")
            return
        print(f"Leaky ReLU 300-100, batch 32, SGD 1e-3, {epochs} epochs on {folder}")
        ref = _reference(folder, epochs, work)
        ours = _entry_point(folder, epochs, work)
    for label, res in (("notebook code", ref), ("entry point", ours)):
        secs = res["epoch_seconds"]
        print(f"{label:14s} s/epoch {statistics.mean(secs):6.2f} (each: {', '.join(f'{s:.2f}' for s in secs)})"
              f"  val_accuracy {res['val_accuracy'][-1]:.4f}")  # fmt: skip
    ratio = statistics.mean(ours["epoch_seconds"]) / statistics.mean(ref["epoch_seconds"])
    steady = statistics.mean(ours["epoch_seconds"][1:] or ours["epoch_seconds"]) / statistics.mean(
        ref["epoch_seconds"][1:] or ref["epoch_seconds"]
    )
    gap = abs(ours["val_accuracy"][-1] - ref["val_accuracy"][-1])
    print(
        f"ratio entry point / notebook: {ratio:.2f} (after the first epoch: {steady:.2f}; target <= 0.6)"
    )
    print(f"val_accuracy difference: {gap:.4f} (target <= 0.005)")
