"""The report of 100 runs builds in under 10 s, statistics included.

100 runs in a temporary SQLite store, shaped like a real sweep: 10 configurations,
activation (5) x model (a 2-layer and a 100-layer net), each over 10 seeds, 10 epochs
each, every param of a composed config, diagnostics per the diagnostics contract
(per-layer metrics at 11 probe steps and diagnostics/diagnostics.json), the tags a run
gets (group_hash, gradient_health), a few runs that exploded and ended FAILED. Writing the
store is not timed; reading it and building the page (groups, comparisons, words, CSV
files, figures) is.
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from mlflow.entities import Metric

ACTIVATIONS = ("sigmoid", "tanh", "relu", "elu", "selu")
INIT = "he_normal"
MODELS = {"mlp": 2, "deep": 100}
SEEDS = tuple(range(42, 52))
# (model, activation, seed) of the runs that blow up at epoch 3.
EXPLODED = {("deep", "relu", 42), ("deep", "relu", 45), ("deep", "elu", 47)}
EPOCHS = 10
TARGET_SECONDS = 10.0


def _params(activation: str, init: str, model: str, seed: int) -> dict[str, object]:
    """Every param of the composed config, as a real run logs them (Hydra initialized
    once by make_store)."""
    from hydra import compose

    from experiments.core.flatten import flatten

    overrides = [
        f"activation={activation}",
        f"init={init}",
        f"model={model}",
        f"training.seed={seed}",
        "data=synthetic",
    ]
    return flatten(compose("config", overrides=overrides))


def _diagnostics(rng, layers: int, activation: str, init: str, exploded_at: int | None):
    """Per-layer stats whose trend over depth depends on the pair, as a real sweep's do."""
    gain = {"sigmoid": 0.75, "tanh": 0.93, "relu": 0.98, "elu": 0.99, "selu": 1.0}[activation]
    steps = list(range(EPOCHS + 1))
    depth = np.arange(layers)
    stats: dict[str, list] = {
        k: []
        for k in (
            "grad/kernel_norm",
            "grad/signal_std",
            "act/mean",
            "act/std",
            "act/dead_frac",
            "act/saturated_frac",
        )
    }
    ratios = []
    for step in steps:
        drift = 1 + 0.02 * step
        signal = 1e-3 * (gain * drift) ** (layers - 1 - depth) * rng.lognormal(0, 0.05, layers)
        if exploded_at is not None and step > exploded_at:
            signal = np.full(layers, np.nan)
        stats["grad/signal_std"].append(signal.tolist())
        stats["grad/kernel_norm"].append((signal * 30).tolist())
        stats["act/mean"].append(rng.normal(0, 0.1, layers).tolist())
        stats["act/std"].append((gain**depth * rng.lognormal(0, 0.05, layers)).tolist())
        relu_like = activation in ("relu", "elu", "selu")
        stats["act/dead_frac"].append(rng.uniform(0, 0.3, layers).tolist() if relu_like else None)
        stats["act/saturated_frac"].append(
            None if relu_like else rng.uniform(0, 0.5, layers).tolist()
        )
        ratios.append(float(signal[0] / signal[-1]))
    return steps, stats, ratios


def write_run(client, experiment_id: str, parent_id: str, folder: Path, rng, combo) -> None:
    from experiments.diagnostics.record import DiagnosticsRecord
    from experiments.diagnostics.verdict import judge
    from experiments.tracking.recorder import RunRecorder

    activation, model, seed = combo
    init = INIT
    layers = MODELS[model]
    exploded_at = 3 if (model, activation, seed) in EXPLODED else None
    choices = {
        "data": "synthetic",
        "model": model,
        "init": init,
        "activation": activation,
        "normalization": "none",
        "clipping": "none",
        "optimizer": "sgd",
        "training": "default",
        "tracking": "local",
    }
    recorder = RunRecorder.start(
        client,
        experiment_id,
        f"{activation}-{init}-{model} seed={seed}",
        {f"choice.{k}": v for k, v in choices.items()}
        | {"seed": str(seed), "group_hash": f"{activation}-{model}"},
        parent_id,
    )
    recorder.log_params(_params(activation, init, model, seed))
    skill = {"sigmoid": 0.7, "tanh": 0.8, "relu": 0.85, "elu": 0.86, "selu": 0.87}[activation]
    skill -= 0.03 if model == "deep" else 0.0
    steps, stats, ratios = _diagnostics(rng, layers, activation, init, exploded_at)
    digits = 3 if layers >= 100 else 2
    # Every probe step's per-layer metrics in batches of 1000, as one run's worth of
    # writes: the store's size, not the way it was written, is what the report meets.
    now = int(time.time() * 1000)
    per_layer = [
        Metric(f"{stat}/layer_{layer + 1:0{digits}d}", value, now, step)
        for step in steps
        for stat, rows in stats.items()
        if rows[step] is not None
        for layer, value in enumerate(rows[step])
    ] + [
        Metric("grad/depth_ratio", ratio, now, step)
        for step, ratio in zip(steps, ratios, strict=True)
    ]
    for i in range(0, len(per_layer), 1000):
        client.log_batch(recorder.run_id, metrics=per_layer[i : i + 1000])
    for step in steps[:-1]:
        failed = exploded_at is not None and step >= exploded_at
        acc = skill * (1 - math.exp(-(step + 1) / 3)) + rng.normal(0, 0.005)
        recorder.log_metrics(
            {
                "loss": math.nan if failed else 2.3 * (1 - acc) + 0.1,
                "accuracy": acc,
                "val_loss": math.nan if failed else 2.3 * (1 - acc) + 0.15,
                "val_accuracy": acc - 0.01,
                "epoch_seconds": 4.5 + rng.normal(0, 0.2),
                "grad/global_norm_mean": 1.0,
                "grad/global_norm_max": 2.0,
            },
            step=step,
        )
        if failed:
            break
    diagnostics = {
        "layers": list(range(1, layers + 1)),
        "layer_names": [f"hidden_{i:0{digits}d}" for i in range(1, layers + 1)],
        "activation": activation,
        "probe_size": 512,
        "norms": "pre-clip",
        "epochs": steps[: len(ratios)],
        "stats": stats,
        "depth_ratio": ratios,
        "global_norm": {"mean": [1.0] * EPOCHS, "max": [2.0] * EPOCHS},
    }
    path = folder / recorder.run_id / "diagnostics.json"
    path.parent.mkdir()
    path.write_text(json.dumps(diagnostics))
    client.log_artifact(recorder.run_id, str(path), "diagnostics")
    reason = f"non-finite training loss (nan) at epoch {exploded_at}"
    verdict = judge(DiagnosticsRecord.from_json(diagnostics), exploded_at, reason)
    recorder.set_tags(verdict.tags())
    if exploded_at is not None:
        recorder.set_tags({"failed_epoch": exploded_at, "failed_layer": 1})
        recorder.end("FAILED", reason)
    else:
        test = skill - 0.02 + rng.normal(0, 0.005)
        recorder.log_metrics({"test_accuracy": test, "test_loss": 0.4}, step=EPOCHS - 1)
        recorder.end("FINISHED")


def make_store(folder: Path) -> tuple[str, str]:
    """100 runs under one sweep parent; returns (tracking URI, parent run id)."""
    from hydra import initialize_config_dir
    from mlflow.tracking import MlflowClient

    import experiments.config.schema  # noqa: F401  (stores the schema that compose needs)
    from experiments.paths import CONF_DIR
    from experiments.tracking.recorder import RunRecorder
    from experiments.tracking.store import artifact_location, ensure_experiment

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, "gradient-lab", artifact_location(uri, folder))
    parent = RunRecorder.start(client, experiment_id, "sweep bench", {"sweep": "true"})
    rng = np.random.default_rng(0)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for combo in itertools.product(ACTIVATIONS, MODELS, SEEDS):
            write_run(client, experiment_id, parent.run_id, folder, rng, combo)
    parent.end("FINISHED")
    return uri, parent.run_id


def main() -> None:
    from mlflow.tracking import MlflowClient

    from experiments.report.build import build_report
    from experiments.report.compare import find_differences
    from experiments.report.data import select_runs
    from experiments.report.groups import group_statistics

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        uri, parent_id = make_store(folder)
        print(f"store of 100 runs written in {time.perf_counter() - started:.0f} s (not timed)")

        started = time.perf_counter()
        selection = select_runs(MlflowClient(uri), parent_run_id=parent_id)
        read = time.perf_counter() - started
        report = build_report(selection, folder / "report")
        total = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (folder / "report").iterdir()) / 1e6
        stats = report.statistics
        print(
            f"report of {len(report.runs)} runs ({len(stats.groups)} configurations x "
            f"{len(SEEDS)} seeds): read {read:.2f} s, statistics, figures and page "
            f"{total - read:.2f} s, total {total:.2f} s (target < {TARGET_SECONDS:.0f} s); "
            f"{len(report.figures)} figures, {size:.1f} MB"
        )
        started = time.perf_counter()
        again = group_statistics(report.runs, find_differences(report.runs).factors)
        words = sum(c.seeds_needed or 0 for c in again.comparisons)  # the power estimates
        print(
            f"of which the statistics alone: {time.perf_counter() - started:.2f} s for "
            f"{len(again.comparisons)} comparisons ({words} seeds needed in all, "
            f"{sum(c.significant for c in again.comparisons)} significant)"
        )


if __name__ == "__main__":
    main()
