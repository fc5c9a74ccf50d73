"""The probe's statistics against an independent eager computation, and its bookkeeping:
the probe batch, metric names, diagnostics.json."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments import diagnostics, training
from experiments.config import (
    ActivationConfig,
    ActivationName,
    DiagnosticsConfig,
    InitConfig,
    InitName,
    ModelConfig,
    NormalizationConfig,
    NormalizationName,
    Position,
    TrainingConfig,
)
from experiments.models import build_model


def make_model(hidden, activation="relu", init=InitName.he_normal, normalization=None, seed=0):
    training.seed_everything(seed)
    model = build_model(
        ModelConfig(hidden=list(hidden)),
        InitConfig(init),
        ActivationConfig(ActivationName(activation)),
        normalization or NormalizationConfig(),
        (4, 5),
        3,
    )
    training.compile_model(model, keras.optimizers.SGD(0.1), TrainingConfig())
    return model


def batch(n=64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4, 5)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)


def eager_reference(model, x, y):
    """Per block, straight from an eager tape and NumPy: kernel grad norm, std of the
    gradient at the activation's input, mean/std of its output, pre-activations."""
    out = {"kernel_norm": [], "signal_std": [], "mean": [], "std": [], "pre": []}
    with tf.GradientTape(persistent=True) as tape:
        h = tf.constant(x)
        pre, post = [], []
        for layer in model.layers:
            if layer.name.endswith("_act"):
                tape.watch(h)
                pre.append(h)
            h = layer(h, training=False)
            if layer.name.endswith("_act"):
                post.append(h)
        loss = keras.losses.sparse_categorical_crossentropy(y, h)
        loss = tf.reduce_mean(loss)
    kernels = [model.get_layer(f"hidden_{i:02d}").kernel for i in range(1, len(pre) + 1)]
    for kernel, s, a in zip(kernels, pre, post, strict=True):
        out["kernel_norm"].append(np.linalg.norm(tape.gradient(loss, kernel).numpy()))
        out["signal_std"].append(tape.gradient(loss, s).numpy().std())
        out["mean"].append(a.numpy().mean())
        out["std"].append(a.numpy().std())
        out["pre"].append(s.numpy())
    return out


@pytest.mark.parametrize("normalization", ["none", "bn_before", "bn_after"])
def test_probe_statistics_match_an_eager_reference(normalization):
    # Widths 6, 5, 6, 5: the probe groups same-shaped layers, this checks the order survives.
    norm = {
        "none": NormalizationConfig(),
        "bn_before": NormalizationConfig(NormalizationName.batchnorm, Position.before, True),
        "bn_after": NormalizationConfig(NormalizationName.batchnorm, Position.after, False),
    }[normalization]
    model = make_model([6, 5, 6, 5], normalization=norm)
    x, y = batch()
    values = diagnostics.Probe(model, x, y, "relu")()
    ref = eager_reference(model, x, y)

    np.testing.assert_allclose(values["grad/kernel_norm"], ref["kernel_norm"], rtol=1e-4)
    np.testing.assert_allclose(values["grad/signal_std"], ref["signal_std"], rtol=1e-4)
    np.testing.assert_allclose(values["act/mean"], ref["mean"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(values["act/std"], ref["std"], rtol=1e-4)
    dead = [float((s <= 0).all(axis=0).mean()) for s in ref["pre"]]
    np.testing.assert_allclose(values["act/dead_frac"], dead)
    assert set(values) == {
        "grad/kernel_norm",
        "grad/signal_std",
        "act/mean",
        "act/std",
        "act/dead_frac",
    }


def test_dead_units_are_those_never_active_on_the_probe_batch():
    model = make_model([8, 8])
    x, y = batch()
    first = model.get_layer("hidden_01")
    bias = np.zeros(8, np.float32)
    bias[[1, 4, 6]] = -1e4  # these three never fire
    first.bias.assign(bias)
    values = diagnostics.Probe(model, x, y, "relu")()
    assert values["act/dead_frac"][0] == pytest.approx(3 / 8)


@pytest.mark.parametrize(
    ("activation", "saturating_bias", "neutral_bias"), [("sigmoid", 10.0, 0.0), ("tanh", 3.0, 0.0)]
)
def test_saturated_fraction_counts_values_near_the_asymptotes(
    activation, saturating_bias, neutral_bias
):
    model = make_model([8], activation=activation, init=InitName.glorot_uniform)
    x, y = batch()
    layer = model.get_layer("hidden_01")
    layer.kernel.assign(np.zeros((20, 8), np.float32))
    bias = np.full(8, neutral_bias, np.float32)
    bias[:2] = saturating_bias  # sigmoid(10) = 0.99995, tanh(3) = 0.995: saturated
    layer.bias.assign(bias)
    values = diagnostics.Probe(model, x, y, activation)()
    assert values["act/saturated_frac"][0] == pytest.approx(2 / 8)
    assert "act/dead_frac" not in values


def test_probe_batch_is_fixed_by_the_seed():
    x = np.arange(1000, dtype=np.float32).reshape(1000, 1)
    y = np.arange(1000)
    a, _ = diagnostics.probe_batch(x, y, 100, seed=7)
    b, _ = diagnostics.probe_batch(x, y, 100, seed=7)
    c, _ = diagnostics.probe_batch(x, y, 100, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a)) == 100
    whole, labels = diagnostics.probe_batch(x[:50], y[:50], 100, seed=7)
    assert len(whole) == 50 and len(labels) == 50


def test_layer_labels_sort_as_text():
    assert diagnostics.layer_label(7, 99) == "layer_07"
    assert diagnostics.layer_label(7, 100) == "layer_007"
    assert diagnostics.layer_label(100, 100) == "layer_100"


def test_callback_probes_at_start_every_n_epochs_and_at_the_end():
    model = make_model([6, 5])
    x, y = batch(96)
    logged: list[tuple[int, dict]] = []
    diag = diagnostics.setup(
        model,
        x,
        y,
        DiagnosticsConfig(every_n_epochs=2, probe_size=32),
        "relu",
        0,
        lambda metrics, step: logged.append((step, metrics)),
    )
    model.fit(x, y, batch_size=16, epochs=5, callbacks=diag.callbacks, verbose=0)
    assert diag.record.epochs == [0, 2, 4, 5]
    probe_steps = [s for s, m in logged if "grad/depth_ratio" in m]
    norm_steps = [s for s, m in logged if "grad/global_norm_mean" in m]
    assert probe_steps == [0, 2, 4, 5]
    assert norm_steps == [0, 1, 2, 3, 4]
    first = next(m for s, m in logged if "grad/depth_ratio" in m)
    assert set(first) == {
        f"{stat}/layer_0{i}"
        for stat in ("grad/kernel_norm", "grad/signal_std", "act/mean", "act/std", "act/dead_frac")
        for i in (1, 2)
    } | {"grad/depth_ratio"}
    assert first["grad/depth_ratio"] == pytest.approx(
        first["grad/signal_std/layer_01"] / first["grad/signal_std/layer_02"]
    )


def test_diagnostics_json_follows_the_contract(tmp_path):
    model = make_model([6, 5], activation="tanh", init=InitName.glorot_uniform)
    x, y = batch(96)
    diag = diagnostics.setup(
        model, x, y, DiagnosticsConfig(probe_size=40, plots=False), "tanh", 0, lambda m, s: None
    )
    model.fit(x, y, batch_size=16, epochs=2, callbacks=diag.callbacks, verbose=0)
    diag.record.depth_ratio[0] = math.inf  # a non-finite number is written as null
    (path, folder), *rest = diag.write_artifacts(tmp_path)
    assert (folder, rest) == ("diagnostics", [])
    doc = json.loads(path.read_text())
    assert doc["layers"] == [1, 2]
    assert doc["layer_names"] == ["hidden_01", "hidden_02"]
    assert (doc["activation"], doc["probe_size"], doc["norms"]) == ("tanh", 40, "pre-clip")
    assert doc["epochs"] == [0, 1, 2]
    assert doc["stats"]["act/dead_frac"] is None
    for name in ("grad/kernel_norm", "grad/signal_std", "act/mean", "act/std"):
        assert np.array(doc["stats"][name]).shape == (3, 2)
    assert np.array(doc["stats"]["act/saturated_frac"]).shape == (3, 2)
    assert doc["depth_ratio"][0] is None and len(doc["depth_ratio"]) == 3
    assert len(doc["global_norm"]["mean"]) == len(doc["global_norm"]["max"]) == 2
    norms = doc["global_norm"]
    assert all(m <= mx for m, mx in zip(norms["mean"], norms["max"], strict=True))
    assert doc["failure"] is None
