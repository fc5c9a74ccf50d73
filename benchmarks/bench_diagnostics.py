"""Cost of the gradient diagnostics: epoch time with diagnostics on versus off.

Two nets (a third on request, the `cnn` preset: target 10%), as the presets build them: the notebook's Dense 300-100 Leaky ReLU net
(he_normal, SGD 1e-3, batch 32; target: at most 5% slower) and the 100-layer SELU net
(`experiment=selu_deep`, standardized inputs; target: at most 10%). Each fit runs through
`training.fit` with its metrics going to a real MLflow store in a temporary folder, so the
cost counted is everything a run pays in its epochs: the probe at initialization and
after every epoch (its one-off compilation included), its MLflow metrics, and the
training step's global norm and finite check. Writing diagnostics.json and the plots
happens once after training and is reported apart.

Off, on, and on without the training step's norm (`diagnostics.step_norm=false`: the
probes alone) alternate, and the fastest repeat of each is kept, which damps the noise
of a shared machine; process CPU time is printed beside wall time. BENCH_DIAG_THREADS=1
runs TensorFlow on one thread, which makes the comparison steadier under load.

Real Fashion-MNIST when FASHION_MNIST_DIR is set, else synthetic images of the same shape
and count. Each fit runs as many epochs as its preset (10 and 5), so one-off costs (the
probe's compilation) weigh as they do in a real run. Environment knobs: BENCH_DIAG_EPOCHS
(default: the preset's), BENCH_DIAG_STEPS (steps per epoch, default a full epoch),
BENCH_DIAG_REPEATS (default 2), BENCH_DIAG_NETS (a comma-separated subset of
"mlp,selu_deep,cnn"; default "mlp,selu_deep"; the conv preset's cost is also printed by
bench_cnn).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from experiments.config.checks import validate
from experiments.config.schema import Config  # noqa: E402
from experiments.paths import CONF_DIR


@dataclass
class Net:
    name: str
    overrides: list[str]
    target: float  # allowed relative cost


NETS = {
    "mlp": Net("300-100 Leaky ReLU (experiment=leaky_relu)", ["experiment=leaky_relu"], 0.05),
    "selu_deep": Net("100-layer SELU (experiment=selu_deep)", ["experiment=selu_deep"], 0.10),
    # The conv preset on 10,000 training images (its full 55,000 take 4-5 minutes a fit).
    "cnn": Net(
        "6-conv CNN (experiment=cnn, data.train_size=15000)",
        ["experiment=cnn", "data.train_size=15000"],
        0.10,
    ),
}


def _config(net: Net, epochs: int | None, steps: int | None) -> Config:
    """The preset as `python -m experiments.train` composes it."""
    from hydra import compose, initialize_config_dir

    folder = os.environ.get("FASHION_MNIST_DIR")
    real = folder and (Path(folder) / "train-images-idx3-ubyte.gz").is_file()
    data = (
        []
        if real
        else [
            "data=synthetic",
            "data.train_size=60000",
            "data.validation_size=5000",
            "data.test_size=1000",
        ]
    )
    overrides = [
        *net.overrides,
        *data,
        *([f"training.epochs={epochs}"] if epochs else []),
        f"training.steps_per_epoch={steps or 'null'}",
        "training.verbose=0",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return validate(compose("config", overrides=overrides))


OFF, ON, PROBES_ONLY = "diagnostics off", "diagnostics on", "on, step_norm=false"
MODES = (OFF, ON, PROBES_ONLY)


@dataclass
class Timing:
    wall: float
    cpu: float
    artifacts: float = 0.0
    probe_seconds: list[float] = field(default_factory=list)


def _fit_once(cfg: Config, splits, mode: str, store: Path) -> Timing:
    from mlflow.tracking import MlflowClient

    from experiments.diagnostics.run import RunDiagnostics
    from experiments.tracking.recorder import RunRecorder
    from experiments.tracking.store import ensure_experiment
    from experiments.training import loop as training_module

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = ensure_experiment(client, "bench", (store / "mlruns").as_uri())
    recorder = RunRecorder.start(client, experiment, "bench", {})
    groups = ("model", "init", "activation", "normalization", "optimizer", "clipping")
    model, _, _ = training_module.compiled_model(
        splits, **{g: getattr(cfg, g) for g in (*groups, "schedule", "training")}
    )

    wall, cpu = time.perf_counter(), time.process_time()
    diag = None
    if mode != OFF:
        diag = RunDiagnostics.setup(
            model,
            splits.x_val,
            splits.y_val,
            replace(cfg.diagnostics, step_norm=mode == ON),
            cfg.activation.name.value,
            cfg.training.seed,
            recorder.log_metrics,
        )
    training_module.fit(
        model,
        splits,
        cfg.training,
        recorder.log_metrics,
        extra_callbacks=diag.callbacks if diag else None,
    )
    timing = Timing(time.perf_counter() - wall, time.process_time() - cpu)
    if diag:
        timing.probe_seconds = diag.callback.probe_seconds
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            for path, folder in diag.write_artifacts(Path(out)):
                recorder.log_artifact(path, folder)
        timing.artifacts = time.perf_counter() - started
    recorder.end("FINISHED")
    return timing


def bench_net(key: str, epochs: int | None, steps: int | None, repeats: int) -> float:
    from experiments import data

    net = NETS[key]
    cfg = _config(net, epochs, steps)
    epochs = cfg.training.epochs
    splits = data.load(cfg.data)
    runs: dict[str, list[Timing]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as store:
        # Unmeasured warm-up of every path: the process's own first-use costs would
        # otherwise land on whichever fit comes first.
        warm_up = _config(net, 1, 20)
        for mode in MODES:
            _fit_once(warm_up, splits, mode, Path(store))
        for _ in range(repeats):
            for mode in MODES:
                runs[mode].append(_fit_once(cfg, splits, mode, Path(store)))
    best = {mode: min(runs[mode], key=lambda t: t.wall) for mode in MODES}
    off = best[OFF]
    cost = best[ON].wall / off.wall - 1
    steps_text = f"{steps} steps each" if steps else "full epochs"
    verdict = "within" if cost <= net.target else "OVER"
    probes = best[ON].probe_seconds
    lines = [
        f"{net.name}, {cfg.data.name.value}: {epochs} epochs ({steps_text}, "
        f"batch {cfg.training.batch_size}), best of {repeats}"
    ]
    for mode in MODES:
        t = best[mode]
        extra = "" if mode == OFF else f"  {100 * (t.wall / off.wall - 1):+5.1f}%"
        cpu = "" if mode == OFF else f", {100 * (t.cpu / off.cpu - 1):+.1f}%"
        lines.append(
            f"  epoch time, {mode:<26} {t.wall / epochs:6.2f} s{extra}"
            f"   (cpu {t.cpu / epochs:.2f} s{cpu})"
        )
    lines += [
        f"  DIAGNOSTICS COST: {100 * cost:+.1f}% of epoch time ({verdict} the "
        f"{100 * net.target:.0f}% target)",
        f"  probe: {len(probes)} calls, first (compiles) {probes[0]:.2f} s, "
        f"then {sum(probes[1:]) / max(1, len(probes) - 1):.3f} s each",
        f"  after training, once: diagnostics.json + plots + upload {best[ON].artifacts:.2f} s",
        "  every repeat (wall s): "
        + " | ".join(f"{m}: {', '.join(f'{t.wall:.1f}' for t in runs[m])}" for m in MODES),
    ]
    print("\n".join(lines), flush=True)
    return cost


def main() -> None:
    if os.environ.get("BENCH_DIAG_THREADS"):
        import tensorflow as tf

        threads = int(os.environ["BENCH_DIAG_THREADS"])
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    epochs = int(os.environ["BENCH_DIAG_EPOCHS"]) if os.environ.get("BENCH_DIAG_EPOCHS") else None
    steps = int(os.environ["BENCH_DIAG_STEPS"]) if os.environ.get("BENCH_DIAG_STEPS") else None
    repeats = int(os.environ.get("BENCH_DIAG_REPEATS", "2"))
    nets = os.environ.get("BENCH_DIAG_NETS", "mlp,selu_deep").split(",")
    threads = os.environ.get("BENCH_DIAG_THREADS", "TensorFlow's default")
    print(f"gradient diagnostics on vs off ({os.cpu_count()} cpus, threads: {threads})", flush=True)
    for key in nets:
        bench_net(key.strip(), epochs, steps, repeats)


if __name__ == "__main__":
    main()
