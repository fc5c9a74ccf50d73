"""A checkpoint restores what training depends on, exactly; a damaged file is refused
whole; an epoch's metrics wait for the checkpoint that holds them; each epoch's batches
depend on the seed and the epoch alone."""

from __future__ import annotations

import random
import zipfile

import keras
import numpy as np
import pytest

from experiments.training.checkpoint import (
    Checkpoint,
    CheckpointCallback,
    CheckpointError,
    HeldMetrics,
)
from experiments.training.data_order import EpochBatches


def small_model(rate: float = 0.05) -> keras.Model:
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8), keras.layers.BatchNormalization()]
        + [keras.layers.Dense(3, activation="softmax")]
    )
    optimizer = keras.optimizers.SGD(rate, momentum=0.9)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer)
    return model


def trained_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    model = small_model()
    model.fit(x, np.arange(64) % 3, batch_size=16, epochs=2, verbose=0)
    return model


def checkpoint_of(model, callbacks=(), **fields) -> Checkpoint:
    values = {"config_hash": "abc", "run_id": "r1", "epoch": 2, "extras": {}, "pending": []}
    return Checkpoint.of(model, list(callbacks), **(values | fields))


def test_a_checkpoint_restores_weights_optimizer_rate_and_generators_exactly(tmp_path):
    model = trained_model()
    model.optimizer.learning_rate = 0.0125  # as ReduceLROnPlateau would have set it
    random.seed(7)
    np.random.seed(8)
    path = tmp_path / "checkpoint.npz"
    extras = {"history": {"loss": [1.5, float("nan")]}, "depth": [float("inf")]}
    checkpoint_of(model, extras=extras).write(path)
    expected_draws = (random.random(), float(np.random.rand()))

    fresh = small_model()
    read = Checkpoint.read(path)
    read.restore(fresh)
    for saved, restored in zip(model.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, restored)  # BN's moving statistics included
    for saved, restored in zip(model.optimizer.variables, fresh.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.array(saved), np.array(restored))
    assert int(fresh.optimizer.iterations) == 8  # 2 epochs of 4 steps: where a schedule is
    assert float(fresh.optimizer.learning_rate) == pytest.approx(0.0125)
    assert (random.random(), float(np.random.rand())) == expected_draws
    assert read.extras["depth"] == [float("inf")] and np.isnan(read.extras["history"]["loss"][1])
    assert (read.config_hash, read.run_id, read.epoch) == ("abc", "r1", 2)


def test_a_checkpoint_of_another_net_is_refused(tmp_path):
    path = tmp_path / "checkpoint.npz"
    checkpoint_of(trained_model()).write(path)
    other = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    other.compile(loss="mse", optimizer="sgd")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        Checkpoint.read(path).restore(other)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not a zip", "missing"])
def test_a_damaged_or_missing_file_is_refused_in_one_line(tmp_path, damage):
    path = tmp_path / "checkpoint.npz"
    checkpoint_of(trained_model()).write(path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":  # inside the first member's data: its CRC no longer matches
        start = 100
        path.write_bytes(data[:start] + bytes([data[start] ^ 0xFF]) + data[start + 1 :])
    elif damage == "not a zip":
        path.write_text("checkpoint")
    else:
        path.unlink()
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.read(path)
    line = str(caught.value)
    assert "\n" not in line and str(path) in line
    assert ("cannot be read" if damage == "missing" else "is damaged") in line


def test_writing_replaces_the_file_whole_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    model = trained_model()
    checkpoint_of(model, epoch=1).write(path)
    checkpoint_of(model, epoch=2).write(path)
    assert Checkpoint.read(path).epoch == 2
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None


def test_a_schedule_callbacks_state_comes_back_after_keras_resets_it(tmp_path):
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=5)
    plateau.wait, plateau.best, plateau.cooldown_counter = 3, 0.25, 1
    model = trained_model()
    path = tmp_path / "checkpoint.npz"
    checkpoint_of(model, [plateau]).write(path)
    fresh = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=5)
    fresh.set_model(model)
    fresh.on_train_begin()  # Keras' reset: wait 0, best inf
    Checkpoint.read(path).restore_callbacks([fresh])
    assert (fresh.wait, fresh.best, fresh.cooldown_counter) == (3, 0.25, 1)


def test_held_metrics_go_out_after_the_checkpoint_with_the_time_they_were_measured(tmp_path):
    sent = []
    held = HeldMetrics(lambda metrics, step, time_ms=None: sent.append((metrics, step, time_ms)))
    held.log({"loss": 1.0}, 0)
    assert sent == []
    measured = held.pending[0].time_ms
    model = trained_model()
    path = tmp_path / "checkpoint.npz"
    written = []

    def make(epoch):
        written.append(epoch)
        return checkpoint_of(model, epoch=epoch, pending=held.pending)

    callback = CheckpointCallback(path, held, make, written=lambda: written.append("named"))
    callback.on_epoch_end(0)
    assert written == [1, "named"]  # the file first, then the run names it, then the metrics
    assert sent == [({"loss": 1.0}, 0, measured)]
    assert Checkpoint.read(path).pending[0].metrics == {"loss": 1.0}
    callback.on_train_end()
    held.log({"test_loss": 2.0}, 1)  # after training: straight out
    assert sent[-1] == ({"test_loss": 2.0}, 1, None)


def test_a_net_that_blew_up_writes_no_checkpoint_but_its_metrics_still_go_out(tmp_path):
    sent = []
    held = HeldMetrics(lambda metrics, step, time_ms=None: sent.append(step))
    held.log({"loss": float("nan")}, 0)
    path = tmp_path / "checkpoint.npz"
    callback = CheckpointCallback(path, held, lambda epoch: 1 / 0, exploded=lambda: True)
    callback.on_epoch_end(0)
    assert not path.exists() and sent == [0]


def labels_by_epoch(batches: EpochBatches, epochs) -> list[list[int]]:
    orders = []
    for epoch in epochs:
        batches.on_epoch_begin(epoch)
        orders.append([int(v) for _, y in batches.dataset for v in y.numpy()])
    return orders


def test_an_epochs_batches_depend_on_the_seed_and_the_epoch_alone():
    x = np.arange(10, dtype="float32")[:, None]
    y = np.arange(10)
    first = EpochBatches(x, y, seed=3, batch_size=4, steps=3)
    orders = labels_by_epoch(first, [0, 1, 2])
    assert all(sorted(order) == list(range(10)) for order in orders)  # each image once
    assert len({tuple(order) for order in orders}) == 3  # reshuffled every epoch
    # A new process continuing at epoch 2 sees epoch 2's batches.
    later = EpochBatches(x, y, seed=3, batch_size=4, steps=3)
    assert labels_by_epoch(later, [2]) == orders[2:]
    assert labels_by_epoch(EpochBatches(x, y, seed=4, batch_size=4, steps=3), [0]) != orders[:1]
    # A transfer phase's epochs come after the earlier phases'.
    offset = EpochBatches(x, y, seed=3, batch_size=4, steps=3, step_offset=2)
    assert labels_by_epoch(offset, [0]) == orders[2:]
    capped = EpochBatches(x, y, seed=3, batch_size=4, steps=2)
    assert labels_by_epoch(capped, [1]) == [orders[1][:8]]
