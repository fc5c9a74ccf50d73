"""Residual nets (model.residual) and LayerNorm blocks, layer by layer and by what they
compute; the diagnostics read them as they read a plain net."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers.nets import build_net, hidden

from experiments.diagnostics.probe import Probe, hidden_blocks
from experiments.models.monitored import MonitoredFunctional

WIDTHS = [30, 20, 20, 20, 20]  # skips every 2 blocks: [1, 2] (784 -> 20), [3, 4], [5]


def residual(*overrides: str, widths=WIDTHS):
    return build_net(
        *hidden(widths), "model.residual=true", "activation=relu", *overrides, input_shape=(6, 6)
    )[1]


def names(model) -> list[str]:
    return [layer.name for layer in model.layers]


def path(model) -> list[str]:
    """The layers after Flatten in the order they run, but for the skip's projection
    (which Keras may run as soon as its input is ready)."""
    return [n for n in names(model)[2:] if not n.endswith("_skip")]


def test_skips_join_every_second_block_through_a_projection_only_where_widths_differ():
    model = residual("model.residual_every=2")
    assert isinstance(model, MonitoredFunctional)
    layers = names(model)
    assert [n for n in layers if n.endswith("_add")] == [
        "hidden_02_add",
        "hidden_04_add",
        "hidden_05_add",
    ]
    assert [n for n in layers if n.endswith("_skip")] == ["hidden_02_skip"]  # 36 -> 20
    assert model.get_layer("hidden_02_skip").kernel.shape == (36, 20)
    assert not model.get_layer("hidden_02_skip").use_bias
    # Three skips: each branch scaled by 1/sqrt(3) unless model.residual_scale says otherwise.
    scales = [model.get_layer(f"hidden_{b:02d}_scale").scale for b in (2, 4, 5)]
    assert scales == pytest.approx([1 / math.sqrt(3)] * 3)
    assert not any(n.endswith("_scale") for n in names(residual("model.residual_scale=1")))
    # Every block keeps its Dense layer and its activation, in block order.
    blocks = hidden_blocks(model)
    assert [(b.dense.name, b.activation.name) for b in blocks] == [
        (f"hidden_{i:02d}", f"hidden_{i:02d}_act") for i in range(1, 6)
    ]


@pytest.mark.parametrize("style", ["pre", "post"])
def test_with_zero_branches_the_net_is_its_shortcuts(style):
    """Zero kernels and biases in every block leave only the shortcuts: pre-activation
    (y = x + F(x)) passes the projected input on untouched, post-activation
    (y = act(x + F(x))) applies each skip's activation to it."""
    model = residual(f"model.residual_style={style}", "model.residual_scale=1")
    for block in hidden_blocks(model):
        for weight in block.dense.weights:
            weight.assign(np.zeros(weight.shape, np.float32))
    x = np.random.default_rng(0).normal(size=(8, 6, 6)).astype(np.float32)
    projected = x.reshape(8, 36) @ model.get_layer("hidden_02_skip").kernel.numpy()
    stream = projected if style == "pre" else np.maximum(projected, 0)
    out = model.get_layer("output")
    logits = stream @ out.kernel.numpy() + out.bias.numpy()
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "style,order,biases",
    [
        # He et al. 2016: BN -> act -> Dense in each block, the sum left as it is; no BN
        # right after a Dense layer, so each keeps its bias.
        ("pre", ["hidden_01_bn", "hidden_01_act", "hidden_01", "hidden_02_bn", "hidden_02_act",
                 "hidden_02", "hidden_02_add", "output"], (True, True)),
        # He et al. 2015: the shortcut joins block 2's pre-activation, after its BN, which
        # cancels the Dense bias.
        ("post", ["hidden_01", "hidden_01_bn", "hidden_01_act", "hidden_02", "hidden_02_bn",
                  "hidden_02_add", "hidden_02_act", "output"], (False, False)),
    ],
)  # fmt: skip
def test_the_style_places_the_normalization_activation_and_sum(style, order, biases):
    model = residual(
        f"model.residual_style={style}", "normalization=batchnorm",
        "normalization.position=before", "normalization.input_bn=false", widths=[20, 20],
    )  # fmt: skip
    # One skip, [1, 2]: its branch is not scaled (1/sqrt(1)).
    assert path(model) == order
    assert (model.get_layer("hidden_01").use_bias, model.get_layer("hidden_02").use_bias) == biases
    add = model.get_layer("hidden_02_add").output
    following = model.get_layer("output" if style == "pre" else "hidden_02_act")
    assert following.input is add


def test_layernorm_sits_where_position_says_and_keeps_the_dense_bias():
    for position, order in (("before", ["Dense", "LayerNormalization", "Activation"]),
                            ("after", ["Dense", "Activation", "LayerNormalization"])):  # fmt: skip
        _, model = build_net(
            *hidden([12, 8]), "activation=relu", "normalization=layernorm",
            f"normalization.position={position}", input_shape=(6, 6),
        )  # fmt: skip
        kinds = [type(layer).__name__ for layer in model.layers]
        assert kinds == ["Flatten", *order, *order, "Dense"]
        assert model.get_layer("hidden_01_ln").name and model.get_layer("hidden_01").use_bias


def test_the_probe_reads_each_blocks_pre_activation_in_a_residual_net():
    """The probe's dL/ds of a block is the gradient with respect to its activation
    layer's input, wherever that input comes from (here: a sum, in post style)."""
    model = residual("model.residual_style=post")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 6, 6)).astype(np.float32), rng.integers(0, 10, 32)
    values = Probe(model, x, y, "relu", compiled=False)()
    act = model.get_layer("hidden_04_act")
    pre_model = keras.Model(model.inputs[0], [model.output, act.input])
    with tf.GradientTape() as tape:
        out, s = pre_model(x)
        tape.watch(s)
        loss = model.compute_loss(y=y, y_pred=out)
    assert values["grad/signal_std"][3] == pytest.approx(
        float(tf.math.reduce_std(tape.gradient(loss, s))), rel=1e-5
    )
    assert len(values["grad/kernel_norm"]) == 5 and np.all(values["grad/kernel_norm"] > 0)
