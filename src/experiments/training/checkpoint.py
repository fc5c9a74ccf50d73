"""A run's checkpoint: what it needs to continue from its last finished epoch in another
process, exactly as if it had never stopped.

One `.npz` file, replaced whole after every epoch (written beside, then renamed over the
old one: a kill mid-write leaves the previous epoch's file): the model's weights (batch
norm's moving statistics included), the optimizer's variables (its step count, which
places every learning-rate schedule, and its moments), a plain learning rate that a
callback may have changed, the state of the schedule's callbacks, Python's and NumPy's
random generators, and `extras` (the run's history and diagnostics record, given by the
run). The batches need no state: epoch e's order is a function of the seed and e
(training.data_order). Every member is checked by the zip format's CRC on reading, so a
damaged file is refused, never half read.

The metrics an epoch logs are held (`HeldMetrics`) until the checkpoint that contains
them is written, then sent with the time they were measured. A run killed between the
two sends them again on continuing, at the same steps and times, which MLflow keeps once:
no metric ever gets a step twice.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from experiments.training.schedules import rate_schedule

log = logging.getLogger(__name__)

FORMAT = 1
# What a schedule's callback keeps between epochs (ReduceLROnPlateau's patience count,
# best value and cool-down); Keras resets them in on_train_begin, so they are put back
# after it.
CALLBACK_STATE = ("wait", "best", "cooldown_counter")

MetricsLog = Callable[..., None]


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why in one line."""


@dataclass
class Pending:
    metrics: dict[str, float]
    step: int
    time_ms: int


class HeldMetrics:
    """`log(metrics, step)` as a run's logger takes it; while holding, values wait (with
    the time they were measured) until `flush`."""

    def __init__(self, send: MetricsLog):
        self.send = send
        self.pending: list[Pending] = []
        self.holding = True

    def log(self, metrics: dict[str, float], step: int = 0) -> None:
        if not self.holding:
            self.send(metrics, step)
            return
        self.pending.append(Pending(dict(metrics), step, int(time.time() * 1000)))

    def flush(self) -> None:
        for item in self.pending:
            self.send(item.metrics, item.step, time_ms=item.time_ms)
        self.pending = []


@dataclass
class Checkpoint:
    """A checkpoint's contents. `epoch`: epochs finished."""

    config_hash: str
    run_id: str
    epoch: int
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    learning_rate: float | None = None
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    rng: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        model: keras.Model,
        callbacks: list[keras.callbacks.Callback],
        *,
        config_hash: str,
        run_id: str,
        epoch: int,
        extras: dict[str, Any],
        pending: list[Pending],
    ) -> Checkpoint:
        optimizer = model.optimizer
        numpy_state = np.random.get_state()
        return cls(
            config_hash=config_hash,
            run_id=run_id,
            epoch=epoch,
            weights=model.get_weights(),
            optimizer=[np.array(v) for v in optimizer.variables],
            learning_rate=_plain_rate(optimizer),
            callbacks=[_callback_state(c) for c in callbacks],
            rng={
                "python": _listed(random.getstate()),
                "numpy": [numpy_state[0], *(_listed(v) for v in numpy_state[1:])],
            },
            extras=extras,
            pending=list(pending),
        )

    def restore(self, model: keras.Model) -> None:
        """Weights, optimizer and random generators now; the callbacks' state waits for
        `restore_callbacks` (after Keras' on_train_begin)."""
        optimizer = model.optimizer
        try:
            model.set_weights(self.weights)
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            if len(optimizer.variables) != len(self.optimizer):
                raise ValueError(
                    f"{len(self.optimizer)} optimizer variables saved, "
                    f"{len(optimizer.variables)} in this optimizer"
                )
            for variable, value in zip(optimizer.variables, self.optimizer, strict=True):
                if tuple(variable.shape) != value.shape:
                    raise ValueError(f"optimizer variable {variable.path} has another shape")
                variable.assign(value)
        except ValueError as e:
            raise CheckpointError(f"it does not fit this model ({e})") from None
        if self.learning_rate is not None and _plain_rate(optimizer) is not None:
            optimizer.learning_rate = self.learning_rate
        random.setstate(_tupled(self.rng["python"]))
        kind, key, *rest = self.rng["numpy"]
        np.random.set_state((kind, np.asarray(key, dtype=np.uint32), *rest))

    def restore_callbacks(self, callbacks: list[keras.callbacks.Callback]) -> None:
        for callback, state in zip(callbacks, self.callbacks, strict=False):
            for name, value in state.items():
                setattr(callback, name, value)

    # The file.

    def write(self, path: Path) -> None:
        """The file replaced whole: written beside it, flushed to disk, then renamed."""
        meta = {
            "format": FORMAT,
            "digest": self.config_hash,
            "run_id": self.run_id,
            "epoch": self.epoch,
            "weights": len(self.weights),
            "optimizer": len(self.optimizer),
            "learning_rate": self.learning_rate,
            "callbacks": self.callbacks,
            "rng": self.rng,
            "extras": self.extras,
            "pending": [vars(p) for p in self.pending],
        }
        arrays = {f"weight_{i}": w for i, w in enumerate(self.weights)}
        arrays |= {f"optimizer_{i}": v for i, v in enumerate(self.optimizer)}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with open(partial, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        """Raises CheckpointError (one line: why) for a missing, damaged or foreign file."""
        try:
            data = path.read_bytes()
        except OSError as e:
            raise CheckpointError(f"{path} cannot be read ({e.strerror or e})") from None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                members = {name: archive[name] for name in archive.files}
            meta = json.loads(members.pop("meta").tobytes())
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path} is format {meta.get('format')}, not {FORMAT}")
            return cls(
                config_hash=str(meta["digest"]),
                run_id=str(meta["run_id"]),
                epoch=int(meta["epoch"]),
                weights=[members[f"weight_{i}"] for i in range(meta["weights"])],
                optimizer=[members[f"optimizer_{i}"] for i in range(meta["optimizer"])],
                learning_rate=meta["learning_rate"],
                callbacks=meta["callbacks"],
                rng=meta["rng"],
                extras=meta["extras"],
                pending=[Pending(**p) for p in meta["pending"]],
            )
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, ValueError, KeyError, TypeError, EOFError, OSError) as e:
            raise CheckpointError(f"{path} is damaged ({type(e).__name__}: {e})") from None


class CheckpointCallback(keras.callbacks.Callback):
    """Writes the checkpoint at the start of training (the run can be continued from
    epoch 0 on), after every epoch and at the end, then sends the metrics it holds.
    Listed after every callback that logs or keeps state, so that each epoch's file has
    all of them. `make` builds the checkpoint of `epoch` finished epochs."""

    def __init__(
        self,
        path: Path,
        held: HeldMetrics,
        make: Callable[[int], Checkpoint],
        initial_epoch: int = 0,
        restored: Checkpoint | None = None,
        callbacks: list[keras.callbacks.Callback] | None = None,
        exploded: Callable[[], bool] = lambda: False,
        written: Callable[[], None] | None = None,
    ):
        super().__init__()
        self.path = path
        self.held = held
        self.make = make
        self.epochs_done = initial_epoch
        self.restored = restored
        self.stateful = callbacks or []
        self.exploded = exploded
        self.written = written  # called once, after the first file is in place

    def on_train_begin(self, logs=None):
        if self.restored is not None:
            self.restored.restore_callbacks(self.stateful)
        self._save()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1
        self._save()

    def on_train_end(self, logs=None):
        self._save()
        self.held.holding = False  # what the run logs from now on goes straight out

    def _save(self) -> None:
        # A net that blew up is no state to continue from: its run ends FAILED.
        if not self.exploded():
            self.make(self.epochs_done).write(self.path)
            if self.written is not None:
                self.written()
                self.written = None
        self.held.flush()


def _plain_rate(optimizer) -> float | None:
    """The learning rate when it is a value (a callback may change it), not a schedule."""
    if rate_schedule(optimizer) is not None:
        return None
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _callback_state(callback: keras.callbacks.Callback) -> dict[str, Any]:
    return {
        name: _listed(getattr(callback, name))
        for name in CALLBACK_STATE
        if isinstance(getattr(callback, name, None), int | float | np.number)
    }


def _listed(value: Any) -> Any:
    """Tuples and arrays as JSON lists (random generators' states)."""
    if isinstance(value, tuple | list | np.ndarray):
        return [_listed(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value
