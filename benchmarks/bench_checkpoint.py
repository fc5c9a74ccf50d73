"""What checkpoints cost: the file written after every epoch, against the epoch itself,
and the lab's batches (epoch e's order a function of seed and e, which continuation needs)
against Keras' own array pipeline.

For each net, as its preset builds it (the notebook's Dense 300-100 Leaky ReLU net,
`experiment=leaky_relu`; the 100-layer SELU net, `experiment=selu_deep`):
- one epoch through Keras' array input (`model.fit(x, y, shuffle=True)`) and one through
  the lab's `EpochBatches`, alternated BENCH_CKPT_REPEATS times (default 3) on one model:
  seconds per epoch, median and range;
- the checkpoint of that model written BENCH_CKPT_WRITES times (default 5): seconds per
  write (median and range), as a share of the epoch, and the file's size; then one read
  and restore into a fresh model.
Real Fashion-MNIST when FASHION_MNIST_DIR is set, else synthetic images of its shape.
Run: `python -m benchmarks.bench_checkpoint` (BENCH_CKPT_NETS=mlp to pick nets).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.bench_diagnostics import NETS, _config  # noqa: E402

GROUPS = ("model", "init", "activation", "normalization", "optimizer", "clipping")


def _spread(values: list[float]) -> str:
    return (
        f"{statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f}, n={len(values)})"
    )


def bench(name: str, repeats: int, writes: int) -> None:
    import keras

    from experiments import data
    from experiments.training import loop
    from experiments.training.checkpoint import Checkpoint
    from experiments.training.data_order import EpochBatches, steps_per_epoch

    net = NETS[name]
    cfg = _config(net, 1, None)
    splits = data.load(cfg.data)
    model, _, _ = loop.compiled_model(
        splits, **{g: getattr(cfg, g) for g in (*GROUPS, "schedule", "training")}
    )
    training = cfg.training
    batches = EpochBatches(
        splits.x_train,
        splits.y_train,
        seed=training.seed,
        batch_size=training.batch_size,
        steps=steps_per_epoch(len(splits.y_train), training.batch_size, None),
    )
    timings: dict[str, list[float]] = {"keras arrays": [], "lab batches": []}
    for repeat in range(repeats + 1):  # the first pair compiles: not counted
        for label in timings:
            started = time.perf_counter()
            if label == "keras arrays":
                model.fit(splits.x_train, splits.y_train, batch_size=training.batch_size,
                          shuffle=True, epochs=1, verbose=0)  # fmt: skip
            else:
                batches.on_epoch_begin(repeat)
                model.fit(batches.dataset, shuffle=False, epochs=1, verbose=0)
            if repeat:
                timings[label].append(time.perf_counter() - started)
    print(f"{net.name}: {len(splits.y_train)} training images, batch {training.batch_size}")
    for label, values in timings.items():
        print(f"  one epoch, {label:<13} {_spread(values)}")
    epoch = statistics.median(timings["lab batches"])

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.npz"
        seconds = []
        for _ in range(writes):
            started = time.perf_counter()
            Checkpoint.of(model, [], config_hash="bench", run_id="bench", epoch=1,
                          extras={}, pending=[]).write(path)  # fmt: skip
            seconds.append(time.perf_counter() - started)
        size = path.stat().st_size / 2**20
        fresh, _, _ = loop.compiled_model(
            splits, **{g: getattr(cfg, g) for g in (*GROUPS, "schedule", "training")}
        )
        started = time.perf_counter()
        Checkpoint.read(path).restore(fresh)
        restore = time.perf_counter() - started
    share = statistics.median(seconds) / epoch
    print(f"  checkpoint write     {_spread(seconds)}: {share:.1%} of an epoch, {size:.1f} MiB")
    print(f"  checkpoint read and restore {restore:.3f} s")
    keras.backend.clear_session()


def main() -> None:
    repeats = int(os.environ.get("BENCH_CKPT_REPEATS", "3"))
    writes = int(os.environ.get("BENCH_CKPT_WRITES", "5"))
    for name in os.environ.get("BENCH_CKPT_NETS", "mlp,selu_deep").split(","):
        bench(name.strip(), repeats, writes)


if __name__ == "__main__":
    main()
