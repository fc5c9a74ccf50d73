"""The four 100-layer nets on the real Fashion-MNIST, over seeds: plain ReLU (relu_deep),
SELU (selu_deep), ReLU with skip connections (residual_deep) and with LayerNorm
(layernorm_deep). Per preset: final val and test accuracy (mean, standard deviation and a
95% t-interval over the seeds), the gradient depth_ratio at initialization and at the end
(geometric mean), and seconds per epoch (median over every epoch but the first, which also
traces the graph); then each pair's difference of test accuracy with a Welch t-interval.

    FASHION_MNIST_DIR=<folder> python -m benchmarks.bench_deep_remedies [1,2,3]

Runs one sweep, `python -m experiments.train -m training.seed=... experiment=<the four>
tracking.experiment=deep-remedies`, into a temporary folder, or into $GRADLAB_BENCH_DIR
if set (kept; a folder that already holds the sweep's finished runs is only summarized,
since a sweep skips the jobs that already finished). Each run is 5 epochs of a 100-layer
net: about 45 s on 2 quiet CPU cores, several times that when they are shared.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from benchmarks.common import data_dir, python, sweep_then_summarize

PRESETS = ("relu_deep", "selu_deep", "residual_deep", "layernorm_deep")
EXPERIMENT = "deep-remedies"
SEEDS = "1,2,3"


def run_sweep(folder: Path, seeds: str) -> None:
    # Hydra varies the last override fastest: the presets alternate, so a change in the
    # machine's load falls on all four alike.
    result = python(
        "-m", "experiments.train", "-m", f"training.seed={seeds}",
        f"experiment={','.join(PRESETS)}", f"tracking.experiment={EXPERIMENT}", "training.verbose=0",
        f"data.dir={data_dir()}", f"hydra.sweep.dir={folder}/multirun",
        cwd=folder, timeout=6 * 3600,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])


def latest_runs(uri: str) -> dict[tuple[str, str], object]:
    """The latest FINISHED run of each (preset, seed) in the experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
    )
    found = {}
    for run in runs:
        preset = run.data.tags.get("choice.experiment")
        if preset in PRESETS and run.data.tags.get("sweep") != "true":
            found[(preset, run.data.tags["seed"])] = run
    return found


def summarize(client, runs: dict[tuple[str, str], object]) -> list[dict[str, object]]:
    """Per preset: n, seeds, mean ± sd [95% t-interval] of each accuracy, the geometric
    mean of depth_ratio at the first and last probe, and the median seconds per epoch."""
    from experiments.report import statistics as lab_statistics

    rows = []
    for preset in PRESETS:
        mine = [run for (p, _), run in sorted(runs.items()) if p == preset]
        if not mine:
            continue
        row: dict[str, object] = {"preset": preset, "n": len(mine)}
        row["seeds"] = ",".join(run.data.tags["seed"] for run in mine)
        for metric in ("val_accuracy", "test_accuracy"):
            found = lab_statistics.summarize([run.data.metrics[metric] for run in mine])
            row[metric] = (found.mean, found.std, found.ci_low, found.ci_high)
        ratios = [
            [m.value for m in sorted(history, key=lambda m: m.step)]
            for history in (client.get_metric_history(r.info.run_id, "grad/depth_ratio") for r in mine)
        ]  # fmt: skip
        row["depth_ratio"] = tuple(
            lab_statistics.summarize_ratio([r[i] for r in ratios]).mean for i in (0, -1)
        )
        seconds = [
            statistics.median(
                m.value
                for m in client.get_metric_history(run.info.run_id, "epoch_seconds")
                if m.step > 0
            )
            for run in mine
        ]
        row["epoch_seconds"] = (statistics.median(seconds), min(seconds), max(seconds))
        rows.append(row)
    return rows


def differences(
    runs: dict[tuple[str, str], object],
) -> list[tuple[str, str, float, float, float, float]]:
    """Each pair of presets: the difference of mean test accuracy, its 95% Welch
    t-interval and p-value (no seeds given: the seeds of one preset are independent of
    the other's)."""
    from experiments.report import statistics as lab_statistics

    accuracy = {
        preset: [r.data.metrics["test_accuracy"] for (p, _), r in sorted(runs.items()) if p == preset]
        for preset in PRESETS
    }  # fmt: skip
    found = []
    for i, a in enumerate(PRESETS):
        for b in PRESETS[i + 1 :]:
            test = lab_statistics.compare(accuracy[b], accuracy[a])
            if test is not None:
                found.append((b, a, test.diff, test.ci_low, test.ci_high, test.p_value))
    return found


def print_table(rows: list[dict[str, object]]) -> None:
    print("| preset | n (seeds) | val acc. mean ± sd [95% t-interval] | test acc. mean ± sd [95% t-interval] "
          "| depth_ratio at init / end | s/epoch median (range over runs) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        cells = [f"`{row['preset']}`", f"{row['n']} ({row['seeds']})"]
        for metric in ("val_accuracy", "test_accuracy"):
            mean, sd, low, high = row[metric]
            cells.append(f"{mean:.4f} ± {sd:.4f} [{low:.4f}, {high:.4f}]")
        init, end = row["depth_ratio"]
        cells.append(f"{init:.2f} / {end:.2f}")
        median, low, high = row["epoch_seconds"]
        cells.append(f"{median:.1f} ({low:.1f}-{high:.1f})")
        print("| " + " | ".join(cells) + " |")


def print_tables(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    runs = latest_runs(uri)
    print_table(summarize(MlflowClient(uri), runs))
    print("\n| test accuracy | difference | 95% Welch t-interval | p |\n| --- | --- | --- | --- |")
    for b, a, diff, low, high, p in differences(runs):
        print(f"| `{b}` - `{a}` | {diff:+.4f} | [{low:+.4f}, {high:+.4f}] | {p:.3f} |")


def main(seeds: str = SEEDS) -> None:
    sweep_then_summarize(run_sweep, print_tables, seeds)


if __name__ == "__main__":
    main(*sys.argv[1:2])
