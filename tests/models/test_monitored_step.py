"""The monitored training step: same training as Keras' own, the pre-clip global norm,
an immediate stop at the first non-finite value and where it appeared, safe loading."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers.nets import build_net, hidden

from experiments.models.monitored import (
    MonitoredSequential,
    StepFailure,
    StepMonitor,
    locate_failure,
)

# A plain net is a chain of layers (Sequential), a residual one a graph (functional; its
# training step and safe loading are checked end to end in tests/test_train.py).
KINDS = {"chain": [], "graph": ["model.residual=true", "model.residual_every=2"]}


def make_model(
    widths=(16, 12), normalization=(), steps_per_execution=4, activation="relu", kind="chain"
):
    return build_net(
        *hidden(list(widths)),
        *KINDS[kind],
        "init=he_normal",
        f"activation={activation}",
        "optimizer=sgd",
        "optimizer.learning_rate=0.05",
        "optimizer.momentum=0.9",
        f"training.steps_per_execution={steps_per_execution}",
        *normalization,
        input_shape=(6, 6),
        num_classes=4,
        seed=3,
    )[1]


def data(n=128, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6)).astype(np.float32), rng.integers(0, 4, n).astype(np.int32)


def weights(model):
    return [w.numpy().copy() for w in model.weights]


def test_monitored_step_trains_exactly_like_keras_own_step():
    norm = ["normalization=batchnorm", "normalization.position=before"]
    x, y = data()
    stock, monitored = make_model(normalization=norm), make_model(normalization=norm)
    monitored.attach_monitor(StepMonitor())
    for model in (stock, monitored):
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(weights(stock), weights(monitored), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_global_norm_is_the_raw_gradient_norm_of_each_step():
    x, y = data(64)
    model = make_model(steps_per_execution=3)
    monitor = StepMonitor()
    model.attach_monitor(monitor)
    # Expected: the norm of each step's raw gradient, replayed on a copy with plain SGD.
    twin = make_model(steps_per_execution=1)
    twin.set_weights(model.get_weights())
    expected = []
    for start in range(0, 64, 16):
        with tf.GradientTape() as tape:
            loss = twin.compute_loss(
                y=y[start : start + 16], y_pred=twin(x[start : start + 16], training=True)
            )
        grads = tape.gradient(loss, twin.trainable_weights)
        expected.append(float(tf.linalg.global_norm(grads)))
        twin.optimizer.apply_gradients(zip(grads, twin.trainable_weights, strict=True))
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    norms = monitor.epoch_norms()
    assert int(monitor.steps.numpy()) == 4
    assert norms["mean"] == pytest.approx(np.mean(expected), rel=1e-4)
    assert norms["max"] == pytest.approx(max(expected), rel=1e-4)


def test_first_non_finite_step_is_skipped_and_updates_stop_mid_execution():
    x, y = data(160)
    x[5 * 16 + 3, 2, 2] = np.nan  # batch 5 of 10 carries a NaN pixel
    # tanh: a NaN input makes the loss NaN. (With ReLU, the fused MatMul+ReLU kernel of
    # the compiled step maps NaN to 0: the loss stays finite, the gradient does not.)
    model = make_model(steps_per_execution=8, activation="tanh")  # NaN inside the 1st call
    monitor = StepMonitor()
    model.attach_monitor(monitor)
    healthy = make_model(steps_per_execution=8, activation="tanh")  # trained on batches 0-4
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    healthy.fit(x[:80], y[:80], batch_size=16, epochs=1, shuffle=False, verbose=0)

    assert (monitor.failure.step, monitor.failure.where) == (5, "forward")
    assert model.stop_training
    assert int(monitor.steps.numpy()) == 5
    for a, b in zip(weights(healthy), weights(model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert all(np.isfinite(w).all() for w in weights(model))


def test_a_non_finite_gradient_is_located_by_the_step_itself():
    # Block 2's output is scaled down by 1e-20 and block 3 scales it back up by 1e20: the
    # forward pass and the loss stay ordinary, but dL/ds_2 is multiplied by 1e20, so
    # block 2's squared gradient norm overflows while blocks 3 and 4 (reached earlier)
    # and block 1 (reached through the tiny kernel of block 2) stay finite.
    x, y = data(64)
    model = make_model(widths=(10, 10, 10, 10), steps_per_execution=2)
    monitor = StepMonitor()
    model.attach_monitor(monitor)
    for name, scale in (("hidden_02", 1e-20), ("hidden_03", 1e20)):
        kernel = model.get_layer(name).kernel
        kernel.assign(kernel.numpy() * np.float32(scale))
    assert np.isfinite(model.evaluate(x, y, verbose=0)).all()
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert monitor.failure == StepFailure(step=0, where="backward", block=2)
    assert model.stop_training
    assert int(monitor.steps.numpy()) == 0 and monitor.epoch_norms() is None
    squared = monitor.failed_squared.numpy()
    assert not np.isfinite(squared[monitor.variable_paths.index("mlp/hidden_02/kernel")])
    assert np.isfinite(squared[monitor.variable_paths.index("mlp/hidden_03/kernel")])


def test_other_errors_of_the_training_step_are_not_swallowed():
    x, y = data(64)
    y[3] = 9  # a label outside the 4 classes
    model = make_model()
    model.attach_monitor(StepMonitor())
    with pytest.raises(tf.errors.InvalidArgumentError, match="label"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_overflow_is_located_at_the_first_non_finite_block(kind):
    model = make_model(widths=(10, 10, 10, 10), kind=kind)
    x, y = data(32)
    model.get_layer("hidden_03").kernel.assign(np.full((10, 10), 1e38, np.float32))
    where, block = locate_failure(model, tf.constant(x), tf.constant(y))
    assert (where, block) == ("forward", 3)


def test_backward_overflow_is_located_where_back_propagation_first_overflows():
    # Block 2's output is scaled down by 1e-20 and block 3 scales it back up by 1e20: the
    # forward pass and the loss stay ordinary, but dL/ds_2 is multiplied by 1e20, so
    # block 2's gradient overflows while blocks 3 and 4 (reached earlier) and block 1
    # (reached through the tiny kernel of block 2) stay finite.
    model = make_model(widths=(10, 10, 10, 10))
    x, y = data(32)
    for name, scale in (("hidden_02", 1e-20), ("hidden_03", 1e20)):
        kernel = model.get_layer(name).kernel
        kernel.assign(kernel.numpy() * np.float32(scale))
    assert np.isfinite(model.evaluate(x, y, verbose=0)[0])
    where, block = locate_failure(model, tf.constant(x), tf.constant(y))
    assert (where, block) == ("backward", 2)


def test_locating_a_failure_leaves_batchnorm_statistics_alone():
    norm = ["normalization=batchnorm", "normalization.position=after"]
    model = make_model(normalization=norm)
    x, y = data(32)
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    locate_failure(model, tf.constant(x), tf.constant(y))
    for a, b in zip(before, model.non_trainable_variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())


def test_saved_model_loads_with_safe_loading(tmp_path):
    model = make_model()
    model.attach_monitor(StepMonitor())
    x, y = data(64)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, MonitoredSequential)
    assert len(loaded.weights) == len(model.weights)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)  # trains without a monitor


def test_under_xla_a_non_finite_step_still_stops_training():
    # XLA compiles check_numerics away; the guard then reads the failure from the norm sum.
    x, y = data(64)
    x[40, 1, 1] = np.nan
    model = make_model(activation="tanh")
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.SGD(0.05),
        steps_per_execution=2,
        jit_compile=True,
    )
    monitor = StepMonitor()
    model.attach_monitor(monitor)
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    assert monitor.failure is not None and monitor.failure.where == "forward"
    assert model.optimizer.iterations.numpy() == 4  # stopped after the second call
