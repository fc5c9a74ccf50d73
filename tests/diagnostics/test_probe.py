"""The probe's statistics against an independent eager computation, and its bookkeeping:
the probe batch, metric names, diagnostics.json."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers.compose import typed
from helpers.nets import build_net, hidden

from experiments.diagnostics.probe import Probe, probe_batch
from experiments.diagnostics.record import DiagnosticsRecord
from experiments.diagnostics.run import RunDiagnostics
from experiments.models.naming import block_of_metric_label, metric_label, parse_layer_metric


def make_model(widths, activation="relu", init="he_normal", normalization=(), seed=0):
    return build_net(
        *hidden(widths),
        f"init={init}",
        f"activation={activation}",
        "optimizer.learning_rate=0.1",
        *normalization,
        input_shape=(4, 5),
        num_classes=3,
        seed=seed,
    )[1]


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
        "none": [],
        "bn_before": ["normalization=batchnorm", "normalization.position=before"],
        "bn_after": [
            "normalization=batchnorm",
            "normalization.position=after",
            "normalization.input_bn=false",
        ],
    }[normalization]
    model = make_model([6, 5, 6, 5], normalization=norm)
    x, y = batch()
    values = Probe(model, x, y, "relu")()
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
    values = Probe(model, x, y, "relu")()
    assert values["act/dead_frac"][0] == pytest.approx(3 / 8)


@pytest.mark.parametrize(
    ("activation", "saturating_bias", "neutral_bias"), [("sigmoid", 10.0, 0.0), ("tanh", 3.0, 0.0)]
)
def test_saturated_fraction_counts_values_near_the_asymptotes(
    activation, saturating_bias, neutral_bias
):
    model = make_model([8], activation=activation, init="glorot_uniform")
    x, y = batch()
    layer = model.get_layer("hidden_01")
    layer.kernel.assign(np.zeros((20, 8), np.float32))
    bias = np.full(8, neutral_bias, np.float32)
    bias[:2] = saturating_bias  # sigmoid(10) = 0.99995, tanh(3) = 0.995: saturated
    layer.bias.assign(bias)
    values = Probe(model, x, y, activation)()
    assert values["act/saturated_frac"][0] == pytest.approx(2 / 8)
    assert "act/dead_frac" not in values


def test_probe_batch_is_fixed_by_the_seed():
    x = np.arange(1000, dtype=np.float32).reshape(1000, 1)
    y = np.arange(1000)
    a, _ = probe_batch(x, y, 100, seed=7)
    b, _ = probe_batch(x, y, 100, seed=7)
    c, _ = probe_batch(x, y, 100, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a)) == 100
    whole, labels = probe_batch(x[:50], y[:50], 100, seed=7)
    assert len(whole) == 50 and len(labels) == 50


def test_layer_labels_sort_as_text_and_parse_back():
    assert metric_label(7, 99) == "layer_07"
    assert metric_label(7, 100) == "layer_007"
    assert metric_label(100, 100) == "layer_100"
    assert block_of_metric_label("layer_007") == 7
    assert parse_layer_metric("layers/grad/signal_std/layer_007") == ("grad/signal_std", 7)
    assert parse_layer_metric("grad/signal_std/layer_07") == ("grad/signal_std", 7)  # earlier runs
    assert parse_layer_metric("grad/depth_ratio") is None
    assert block_of_metric_label("layer_x") is None


def test_callback_probes_at_start_every_n_epochs_and_at_the_end():
    model = make_model([6, 5])
    x, y = batch(96)
    logged: list[tuple[int, dict]] = []
    diag = RunDiagnostics.setup(
        model,
        x,
        y,
        typed("diagnostics.every_n_epochs=2", "diagnostics.probe_size=32").diagnostics,
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
        f"layers/{stat}/layer_0{i}"
        for stat in ("grad/kernel_norm", "grad/signal_std", "act/mean", "act/std", "act/dead_frac")
        for i in (1, 2)
    } | {
        "grad/depth_ratio",
        "grad/signal_std_min",
        "grad/kernel_norm_max",
        "act/std_min",
        "act/dead_frac_max",
    }
    assert list(first)[0] == "grad/depth_ratio"  # headlines first: the UI lists them so
    assert first["grad/depth_ratio"] == pytest.approx(
        first["layers/grad/signal_std/layer_01"] / first["layers/grad/signal_std/layer_02"]
    )


def test_diagnostics_json_follows_the_contract(tmp_path):
    model = make_model([6, 5], activation="tanh", init="glorot_uniform")
    x, y = batch(96)
    settings = typed("diagnostics.probe_size=40", "diagnostics.plots=false").diagnostics
    diag = RunDiagnostics.setup(model, x, y, settings, "tanh", 0, lambda m, s: None)
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
    read = DiagnosticsRecord.read(path.read_text())
    assert read.layer_names == ["hidden_01", "hidden_02"] and read.epochs == [0, 1, 2]
    assert math.isnan(read.depth_ratio[0]) and read.ratio_at("init") != read.ratio_at("last")
    np.testing.assert_allclose(read.matrix("act/std"), diag.record.stats["act/std"])
    assert read.matrix("act/dead_frac") is None
