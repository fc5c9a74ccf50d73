"""A small sweep written straight into an MLflow store, shaped as training and the
gradient diagnostics record runs: `choice.<group>` tags, per-epoch metrics, per-layer
`grad/*` and `act/*` metrics at each probe step and `diagnostics/diagnostics.json`.

init (3) x activation (2) under one sweep parent run, with known numbers so tests can
check what the report shows. Three of the six runs are special:
- glorot_uniform x sigmoid ends FAILED at epoch 1 with a `failure_reason`;
- lecun_normal x sigmoid has no diagnostics at all (diagnostics.enabled=false);
- he_normal x selu has the per-layer metrics but lost its diagnostics.json.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from experiments.tracking.recorder import RunRecorder
from experiments.tracking.store import artifact_location, ensure_experiment
from helpers.workspace import copy_empty_store

INITS = ("glorot_uniform", "he_normal", "lecun_normal")
ACTIVATIONS = ("sigmoid", "selu")
LAYERS = 3
EPOCHS = 3
FAILED = ("glorot_uniform", "sigmoid")
NO_DIAGNOSTICS = ("lecun_normal", "sigmoid")
NO_ARTIFACT = ("he_normal", "selu")
FAILURE_REASON = "non-finite training loss (nan) at epoch 1"
EXPERIMENT = "gradient-lab"


def val_accuracy(init: str, activation: str) -> float:
    return 0.5 + 0.1 * INITS.index(init) + 0.2 * ACTIVATIONS.index(activation)


def signal_std(init: str, activation: str, step: int) -> list[float]:
    """Falls by `gain` per block towards the input: sigmoid vanishes, selu keeps its size."""
    gain = {"sigmoid": 0.1, "selu": 1.0}[activation] * (1 + 0.5 * INITS.index(init))
    return [1e-3 * (1 + step) * gain ** (LAYERS - layer) for layer in range(1, LAYERS + 1)]


def act_std(activation: str, step: int) -> list[float]:
    return [
        (0.5 if activation == "sigmoid" else 1.0) ** layer + 0.01 * step for layer in range(LAYERS)
    ]


def depth_ratio(init: str, activation: str, step: int) -> float:
    signal = signal_std(init, activation, step)
    return signal[0] / signal[-1]


@dataclass
class SweepStore:
    folder: Path
    uri: str
    experiment_id: str
    parent_id: str
    run_ids: dict[tuple[str, str], str] = field(default_factory=dict)

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri)


def make_sweep(folder: Path, experiment: str = EXPERIMENT) -> SweepStore:
    from mlflow.tracking import MlflowClient

    uri = copy_empty_store(folder)
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, experiment, artifact_location(uri, folder))
    parent = RunRecorder.start(client, experiment_id, "sweep init,activation", {"sweep": "true"})
    store = SweepStore(folder, uri, experiment_id, parent.run_id)
    for init in INITS:
        for activation in ACTIVATIONS:
            store.run_ids[init, activation] = _write_run(
                client, experiment_id, parent.run_id, folder, init, activation
            )
    parent.end("FINISHED")
    return store


def _write_run(client, experiment_id, parent_id, folder, init, activation) -> str:
    choices = {
        "data": "synthetic",
        "model": "mlp",
        "init": init,
        "activation": activation,
        "normalization": "none",
        "clipping": "none",
        "optimizer": "sgd",
    }
    recorder = RunRecorder.start(
        client,
        experiment_id,
        f"{activation}-{init}",
        {f"choice.{k}": v for k, v in choices.items()},
        parent_id,
    )
    recorder.log_params(
        {
            "init.name": init,
            "activation.name": activation,
            "optimizer.learning_rate": 0.05,
            "training.seed": 42,
            "tracking.uri": str(folder),
        }
    )
    failed = (init, activation) == FAILED
    diagnostics = (init, activation) != NO_DIAGNOSTICS
    last_step = 1 if failed else EPOCHS
    final = val_accuracy(init, activation)
    for epoch in range(last_step + 1 if failed else EPOCHS):
        exploded = failed and epoch == 1
        recorder.log_metrics(
            {
                "loss": math.nan if exploded else 2.0 / (epoch + 1),
                "accuracy": final + 0.02,
                "val_loss": math.nan if exploded else 1.0 / (epoch + 1),
                "val_accuracy": final * (epoch + 1) / EPOCHS,
                "epoch_seconds": 2.0 + epoch,
            },
            step=epoch,
        )
    steps = list(range(last_step + 1))
    if diagnostics:
        for step in steps:
            per_layer = {}
            for layer, (signal, act) in enumerate(
                zip(signal_std(init, activation, step), act_std(activation, step), strict=True), 1
            ):
                per_layer[f"grad/signal_std/layer_{layer:02d}"] = signal
                per_layer[f"act/std/layer_{layer:02d}"] = act
            per_layer["grad/depth_ratio"] = depth_ratio(init, activation, step)
            recorder.log_metrics(per_layer, step=step)
        if (init, activation) != NO_ARTIFACT:
            _log_diagnostics_json(recorder, folder, init, activation, steps)
    if failed:
        recorder.set_tags({"failed_epoch": 1, "failed_layer": 1})
        recorder.end("FAILED", FAILURE_REASON)
    else:
        recorder.log_metrics({"test_accuracy": final - 0.01, "test_loss": 0.5}, step=EPOCHS - 1)
        recorder.end("FINISHED")
    return recorder.run_id


def _log_diagnostics_json(recorder, folder: Path, init, activation, steps) -> None:
    relu_like = activation == "selu"
    per_step = {
        "grad/signal_std": [signal_std(init, activation, s) for s in steps],
        "act/std": [act_std(activation, s) for s in steps],
        "grad/kernel_norm": [[1.0] * LAYERS for _ in steps],
        "act/mean": [[0.0] * LAYERS for _ in steps],
        "act/dead_frac": [[0.1] * LAYERS for _ in steps] if relu_like else None,
        "act/saturated_frac": None if relu_like else [[0.2] * LAYERS for _ in steps],
    }
    data = {
        "layers": list(range(1, LAYERS + 1)),
        "layer_names": [f"hidden_{i:02d}" for i in range(1, LAYERS + 1)],
        "activation": activation,
        "probe_size": 512,
        "norms": "pre-clip",
        "epochs": steps,
        "stats": per_step,
        "depth_ratio": [depth_ratio(init, activation, s) for s in steps],
        "global_norm": {"mean": [1.0] * len(steps), "max": [2.0] * len(steps)},
    }
    path = folder / "diagnostics_out" / recorder.run_id / "diagnostics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    recorder.log_artifact(path, "diagnostics")
