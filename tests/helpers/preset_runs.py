"""A sweep of presets written straight into an MLflow store, shaped as `make study`
records it: each run tagged with its preset (`choice.experiment`) and the groups the
preset chose, params that differ with the preset, per-epoch metrics and per-layer
`grad/*` metrics at each probe step; a transfer study as its own run with three nested
phase runs. No TensorFlow: a report test builds it in a second.

Five presets from four sections of the chapter (two on activations, one each on
normalization, optimizers and transfer), over `seeds` seeds with known numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from experiments.config.presets import purpose
from experiments.core import names
from experiments.tracking.recorder import RunRecorder
from experiments.tracking.store import artifact_location, ensure_experiment
from helpers.workspace import copy_empty_store

EXPERIMENT = "notebook-study"
EPOCHS = 2
LAYERS = 3
FIRST_SEED = 42
# What each preset chooses beyond the defaults below, and its final val_accuracy.
PRESETS = {
    "leaky_relu": ({"activation": "leaky_relu"}, 0.80),
    "elu": ({"activation": "elu"}, 0.85),
    "batchnorm_after": (
        {"init": "glorot_uniform", "activation": "relu", "normalization": "batchnorm"},
        0.83,
    ),
    "momentum": ({"activation": "leaky_relu"}, 0.86),
    "transfer": ({"init": "glorot_uniform", "activation": "selu", "transfer": "study"}, 0.95),
}
DEFAULT_CHOICES = {
    "data": "synthetic",
    "model": "mlp",
    "init": "he_normal",
    "normalization": "none",
    "clipping": "none",
    "optimizer": "sgd",
    "schedule": "constant",
    "transfer": "none",
}
SECTIONS = {
    "leaky_relu": "Initialization and activations",
    "elu": "Initialization and activations",
    "batchnorm_after": "Normalization",
    "momentum": "Optimizers and schedules",
    "transfer": "Transfer learning",
}
PHASES = ("pretrain_A", "baseline_B", "B_on_A")


def choices_of(preset: str) -> dict[str, str]:
    return DEFAULT_CHOICES | {"experiment": preset} | PRESETS[preset][0]


def noise(preset: str, seed: int) -> float:
    """A seed's deviation, different per preset (so paired differences still spread)."""
    return 0.003 * (((seed - FIRST_SEED) * (list(PRESETS).index(preset) + 2)) % 5 - 2)


def val_accuracy(preset: str, seed: int) -> float:
    return PRESETS[preset][1] + noise(preset, seed)


def signal_std(preset: str, step: int) -> list[float]:
    """Falls towards the input a little, more for the plain presets than with BN."""
    gain = 0.9 if preset == "batchnorm_after" else 0.6
    return [1e-4 * (1 + step) * gain ** (LAYERS - layer) for layer in range(1, LAYERS + 1)]


@dataclass
class PresetSweep:
    folder: Path
    uri: str
    experiment_id: str
    parent_id: str
    seeds: list[int]
    run_ids: dict[tuple[str, int], str] = field(default_factory=dict)

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri)


def make_preset_sweep(folder: Path, seeds: int = 1) -> PresetSweep:
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    uri = copy_empty_store(folder)
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, EXPERIMENT, artifact_location(uri, folder))
    overrides = "experiment=" + ",".join(PRESETS) + f" training.epochs={EPOCHS}"
    parent = RunRecorder.start(
        client, experiment_id, f"sweep {overrides}", {names.SWEEP_TAG: "true"}
    )
    sweep = PresetSweep(
        folder, uri, experiment_id, parent.run_id, list(range(FIRST_SEED, FIRST_SEED + seeds))
    )
    for preset in PRESETS:
        for seed in sweep.seeds:
            sweep.run_ids[preset, seed] = _write_preset_run(
                client, experiment_id, parent.run_id, preset, seed
            )
    parent.end("FINISHED")
    return sweep


def _tags(preset: str, seed: int, group: str) -> dict[str, str]:
    return {
        **{f"{names.CHOICE_TAG_PREFIX}{k}": v for k, v in choices_of(preset).items()},
        names.SEED_TAG: str(seed),
        names.GROUP_TAG: group,
        names.HEALTH_TAG: "healthy",
        names.HEALTH_REASON_TAG: "depth_ratio 0.36 to 0.81 (healthy: 0.1 to 10)",
    }


def _write_preset_run(client, experiment_id, parent_id, preset, seed) -> str:
    choices = choices_of(preset)
    description = f"{purpose(preset)} Overrides: training.epochs={EPOCHS}."
    tags = _tags(preset, seed, f"hash-{preset}") | {names.DESCRIPTION_TAG: description}
    recorder = RunRecorder.start(
        client, experiment_id, f"{preset} training.epochs={EPOCHS}", tags, parent_id
    )
    recorder.log_params(
        {
            "data.name": "synthetic",
            "model.hidden": "[300, 100]",
            "model.repeat": 0,
            "init.name": choices["init"],
            "activation.name": choices["activation"],
            "normalization.name": choices["normalization"],
            "optimizer.name": "sgd",
            "optimizer.momentum": 0.9 if preset == "momentum" else 0.0,
            "training.epochs": EPOCHS,
            "training.seed": seed,
            "transfer.name": choices["transfer"],
        }
    )
    if preset == "transfer":
        _write_transfer_study(client, experiment_id, recorder, seed)
        recorder.set_tags({names.TRANSFER_STUDY_TAG: "true"})
    else:
        _log_training(recorder, preset, val_accuracy(preset, seed))
    recorder.end("FINISHED")
    return recorder.run_id


def _log_training(recorder: RunRecorder, preset: str, final: float) -> None:
    for epoch in range(EPOCHS):
        recorder.log_metrics(
            {
                "loss": 1.0 / (epoch + 1),
                "accuracy": final + 0.01,
                "val_loss": 0.8 / (epoch + 1),
                "val_accuracy": final - 0.05 * (EPOCHS - 1 - epoch),
                "epoch_seconds": 2.0 + epoch,
            },
            step=epoch,
        )
    for step in range(EPOCHS + 1):
        signal = signal_std(preset, step)
        per_layer = {f"grad/signal_std/layer_{i:02d}": v for i, v in enumerate(signal, 1)}
        per_layer["grad/depth_ratio"] = signal[0] / signal[-1]
        recorder.log_metrics(per_layer, step=step)
    recorder.log_metrics({"test_accuracy": final - 0.01, "test_loss": 0.5}, step=EPOCHS - 1)


def _write_transfer_study(client, experiment_id, study: RunRecorder, seed: int) -> None:
    """The study's own run holds the comparison; each phase is a nested run."""
    finals = {"pretrain_A": 0.9, "baseline_B": 0.93, "B_on_A": val_accuracy("transfer", seed)}
    for phase in PHASES:
        tags = _tags("transfer", seed, f"hash-transfer/{phase}") | {names.STUDY_PHASE_TAG: phase}
        run = RunRecorder.start(client, experiment_id, phase, tags, study.run_id)
        run.log_params({"pretrain.epochs" if phase == "pretrain_A" else "epochs": EPOCHS})
        _log_training(run, "transfer", finals[phase])
        run.end("FINISHED")
    baseline, transfer = 0.92, finals["B_on_A"] - 0.01
    study.log_metrics(
        {
            "test_accuracy_baseline": baseline,
            "test_accuracy_transfer": transfer,
            "error_rate_ratio": (1 - baseline) / (1 - transfer),
        }
    )
