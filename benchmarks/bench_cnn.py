"""The `cnn` preset through the entry point against the same net as plain Keras code
(benchmarks/cnn_reference.py), side by side in one run, on the same Fashion-MNIST
subset, each repeated.

Prints seconds per epoch of each (validation included; epoch 1, which traces the
functions, apart), the ratio entry point / plain Keras (target <= 1.0), and the cost of
the diagnostics: the entry point with diagnostics on (the default: a probe of 512
images after every epoch, the training step's gradient norm) against diagnostics off,
as a fraction of the epoch (target <= 10%). An epoch's full time is measured between
the ends of consecutive epochs (MLflow's timestamps of epoch_seconds), so that it holds
the probe, which runs after the epoch's own clock stops. Spread: min-max over repeats.
BENCH_EPOCHS (3), BENCH_CNN_TRAIN_SIZE (15000: 10,000 to train on), BENCH_REPEATS (3).
The diagnostics cost per repeat compares the median full epochs of two processes;
bench_diagnostics (BENCH_DIAG_NETS=cnn) measures it in one process, which a shared
machine disturbs less.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import data_dir, print_ratio, python


def _entry_point(folder: Path, epochs: int, train_size: int, work: Path, diagnostics: bool,
                 tag: str) -> dict:  # fmt: skip
    from mlflow.tracking import MlflowClient

    experiment = f"bench-cnn-{tag}"
    result = python("-m", "experiments.train", "experiment=cnn", f"data.dir={folder}",
                    f"data.train_size={train_size}", f"training.epochs={epochs}",
                    f"diagnostics.enabled={str(diagnostics).lower()}", "training.verbose=0",
                    "tracking.log_model=false", f"tracking.experiment={experiment}",
                    cwd=work)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    history = sorted(client.get_metric_history(run.info.run_id, "epoch_seconds"),
                     key=lambda m: m.step)  # fmt: skip
    accuracy = client.get_metric_history(run.info.run_id, "val_accuracy")
    ends = [m.timestamp / 1000 for m in history]
    return {
        "epoch_seconds": [m.value for m in history],
        "full_epoch_seconds": [b - a for a, b in zip(ends, ends[1:], strict=False)],
        "val_accuracy": [max(accuracy, key=lambda m: m.step).value],
    }


def _plain_keras(folder: Path, epochs: int, train_size: int, work: Path) -> dict:
    result = python("-m", "benchmarks.cnn_reference", str(folder), str(epochs), str(train_size),
                    cwd=work)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def _steady(seconds: list[float]) -> float:
    return statistics.mean(seconds[1:] or seconds)


def _spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.mean(values):{fmt}} (min {min(values):{fmt}}, max {max(values):{fmt}}, n={len(values)})"


def main() -> None:
    folder = data_dir()
    if folder is None:
        print("cnn: skipped, Fashion-MNIST not found (set FASHION_MNIST_DIR)")
        return
    epochs = int(os.environ.get("BENCH_EPOCHS", "3"))
    train_size = int(os.environ.get("BENCH_CNN_TRAIN_SIZE", "15000"))
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    print(
        f"experiment=cnn, {train_size - 5000} training images, {epochs} epochs, {repeats} repeats"
    )
    plain, on, off = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):  # interleaved, so a busy moment hits every side
            work = Path(tmp) / str(repeat)
            work.mkdir()
            plain.append(_plain_keras(folder, epochs, train_size, work))
            on.append(_entry_point(folder, epochs, train_size, work, True, "on"))
            off.append(_entry_point(folder, epochs, train_size, work, False, "off"))
    for label, results in (("plain Keras", plain), ("entry point", on),
                           ("entry point, no diagnostics", off)):  # fmt: skip
        steady = [_steady(r["epoch_seconds"]) for r in results]
        first = [r["epoch_seconds"][0] for r in results]
        accuracy = [r["val_accuracy"][-1] for r in results]
        print(f"{label:28s} s/epoch {_spread(steady)}; first epoch {_spread(first)}; "
              f"val_accuracy {_spread(accuracy, '.4f')}")  # fmt: skip
    ratios = [
        _steady(o["epoch_seconds"]) / _steady(p["epoch_seconds"])
        for o, p in zip(on, plain, strict=True)
    ]
    print(f"ratio entry point / plain Keras per repeat: {_spread(ratios)}")
    print_ratio("ratio entry point / plain Keras", statistics.mean(ratios), 1.0)
    # Medians of each run's full epochs: one epoch slowed by another process counts less.
    cost = [
        statistics.median(a["full_epoch_seconds"]) / statistics.median(b["full_epoch_seconds"])
        - 1.0
        for a, b in zip(on, off, strict=True)
    ]
    print(
        f"diagnostics cost, share of the epoch per repeat: {_spread([100 * c for c in cost], '.1f')} %"
    )
    print_ratio("diagnostics cost (fraction of the epoch)", statistics.median(cost), 0.10)
    print("(separate processes at separate times: on a shared machine this spread is wide; "
          "BENCH_DIAG_NETS=cnn python -m benchmarks.run_all bench_diagnostics measures the "
          "cost in one process, alternating, best of repeats)")  # fmt: skip
