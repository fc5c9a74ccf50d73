"""Conv nets (model=cnn) on tiny images: their shapes, skips and projections, the fan-in
of a conv kernel, the layer names the diagnostics find, groupnorm, and one run through
the entry point that records what a dense net's run records."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers.compose import FAST, typed
from helpers.nets import build_net

from experiments.config.checks import ConfigError
from experiments.diagnostics.probe import Probe, hidden_blocks
from experiments.models.conv import conv_blocks

TINY = ["model=cnn", "model.filters=[4,8]", "model.blocks=[2,2]"]


def kinds(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_a_plain_cnn_is_a_chain_of_conv_blocks_pooling_and_a_dense_head():
    _, model = build_net(*TINY, "model.hidden=[6]", input_shape=(8, 8))
    assert kinds(model) == [
        "Reshape", "Conv2D", "LeakyReLU", "Conv2D", "LeakyReLU", "MaxPooling2D", "Conv2D",
        "LeakyReLU", "Conv2D", "LeakyReLU", "GlobalAveragePooling2D", "Dense", "LeakyReLU",
        "Dense",
    ]  # fmt: skip
    assert model.get_layer("hidden_02").output.shape == (None, 8, 8, 4)
    assert model.get_layer("hidden_03").output.shape == (None, 4, 4, 8)
    conv = model.get_layer("hidden_03")
    assert conv.kernel_size == (3, 3) and conv.padding == "same" and conv.strides == (1, 1)
    assert conv.kernel.shape == (3, 3, 4, 8)
    # The head's Dense block is numbered after the conv blocks.
    assert model.get_layer("hidden_05").units == 6
    assert model.output_shape == (None, 10)
    # Images with channels keep them: no Reshape.
    _, rgb = build_net(*TINY, input_shape=(8, 8, 3))
    assert kinds(rgb)[0] == "Conv2D" and rgb.get_layer("hidden_01").kernel.shape == (3, 3, 3, 4)


def test_stride_downsampling_and_residual_projection_shortcuts():
    overrides = [
        *TINY,
        "model.stem=4",
        "model.downsample=stride",
        "model.residual=true",
        "model.residual_style=post",
        "normalization=batchnorm",
        "normalization.position=before",
        "normalization.input_bn=false",
    ]
    cfg, model = build_net(*overrides, input_shape=(8, 8))
    assert [(b.number, b.stage, b.filters, b.strides) for b in conv_blocks(cfg.model)] == [
        (1, 0, 4, 1), (2, 1, 4, 1), (3, 1, 4, 1), (4, 2, 8, 2), (5, 2, 8, 1),
    ]  # fmt: skip
    assert type(model).__name__ == "MonitoredFunctional"
    assert model.get_layer("hidden_04").strides == (2, 2)
    # Stage 1 keeps the shape: an identity shortcut; stage 2 changes it: a 1x1 conv, stride 2.
    names = [layer.name for layer in model.layers]
    assert "hidden_03_add" in names and "hidden_03_skip" not in names
    skip = model.get_layer("hidden_05_skip")
    assert skip.kernel.shape == (1, 1, 4, 8) and skip.strides == (2, 2) and not skip.use_bias
    # Post style: the sum goes into the last block's ReLU, after its BN (ResNet's block).
    assert model.get_layer("hidden_05_act").input is model.get_layer("hidden_05_add").output
    branch = model.get_layer("hidden_05_scale")  # default scale 1/sqrt(2 skips)
    assert model.get_layer("hidden_05_add").input[1] is branch.output
    assert branch.input is model.get_layer("hidden_05_bn").output
    # BN cancels the conv's bias; its statistics are per channel.
    assert not model.get_layer("hidden_05").use_bias
    assert model.get_layer("hidden_05_bn").gamma.shape == (8,)
    assert model.output_shape == (None, 10)
    # Pooling between stages, pre-activation blocks: the shortcut is taken after the pool.
    _, pooled = build_net(*TINY, "model.stem=4", "model.residual=true", input_shape=(8, 8, 2))
    assert pooled.get_layer("hidden_05_skip").strides == (1, 1)
    assert pooled.get_layer("hidden_04").input.shape == (None, 4, 4, 4)
    assert kinds(pooled).index("MaxPooling2D") < [la.name for la in pooled.layers].index(
        "hidden_04"
    )


def test_he_init_of_a_conv_kernel_uses_fan_in_k_k_c_in():
    """He et al. 2015 for conv layers: Var(w) = 2 / (k * k * c_in); Keras' variance-scaling
    initializers compute a conv kernel's fan-in so (receptive field times input channels)."""
    _, model = build_net(
        "model=cnn", "model.filters=[32,64]", "model.blocks=[1,1]", "init=he_normal",
        input_shape=(8, 8),
    )  # fmt: skip
    kernel = model.get_layer("hidden_02").kernel.numpy()  # 3 x 3 x 32 x 64
    assert kernel.var() == pytest.approx(2 / (3 * 3 * 32), rel=0.05)
    _, lecun = build_net(
        "model=cnn", "model.filters=[32,64]", "model.blocks=[1,1]", "init=lecun_normal",
        input_shape=(8, 8),
    )  # fmt: skip
    assert lecun.get_layer("hidden_02").kernel.numpy().var() == pytest.approx(1 / 288, rel=0.05)


def test_the_diagnostics_find_conv_blocks_by_the_dense_names_and_measure_every_statistic():
    _, model = build_net(*TINY, "model.hidden=[6]", "activation=relu", input_shape=(8, 8))
    blocks = hidden_blocks(model)
    assert [b.dense.name for b in blocks] == [f"hidden_0{i}" for i in range(1, 6)]
    assert [b.activation.name for b in blocks] == [f"hidden_0{i}_act" for i in range(1, 6)]
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, size=16).astype(np.int32)
    values = Probe(model, x, y, "relu", compiled=False)()
    _, dense = build_net("model.hidden=[6,6,6,6,6]", "activation=relu", input_shape=(8, 8))
    dense_values = Probe(dense, x, y, "relu", compiled=False)()
    assert set(values) == set(dense_values)
    for name, per_layer in values.items():
        assert per_layer.shape == (5,) and np.all(np.isfinite(per_layer)), name
    assert np.all(values["grad/kernel_norm"] > 0) and np.all(values["act/std"] > 0)
    # A dead channel: s <= 0 at every position of every image.
    conv = model.get_layer("hidden_02")
    weights = conv.get_weights()
    weights[0][..., 1] = 0.0
    weights[1][1] = -1.0
    conv.set_weights(weights)
    dead = Probe(model, x, y, "relu", compiled=False)()["act/dead_frac"]
    assert dead[1] >= 0.25  # one of 4 channels


def test_prelu_learns_one_slope_per_channel_and_groupnorm_works_in_conv_and_dense_nets():
    _, model = build_net(
        *TINY, "activation=prelu", "normalization=groupnorm", "normalization.groups=2",
        input_shape=(8, 8),
    )  # fmt: skip
    assert model.get_layer("hidden_03_act").alpha.shape == (1, 1, 8)
    gn = model.get_layer("hidden_03_gn")
    assert isinstance(gn, keras.layers.GroupNormalization) and gn.groups == 2
    _, dense = build_net(
        "model.hidden=[8,4]", "normalization=groupnorm", "normalization.groups=4",
        input_shape=(8, 8),
    )  # fmt: skip
    assert dense.get_layer("hidden_02_gn").groups == 4
    assert dense.get_layer("hidden_01").use_bias  # GN does not cancel a bias


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.filters=[8]"], "model.filters=[8] is not allowed: only a conv net"),
        ([*TINY, "model.blocks=[2]"], "model.blocks=[2] is not allowed: one count per stage"),
        ([*TINY, "model.filters=[]", "model.blocks=[]"], "model.filters=[] is not allowed"),
        ([*TINY, "model.blocks=[2,0]"], "model.blocks[1]=0 is not allowed: must be >= 1"),
        ([*TINY, "model.residual=true"], "model.stem=0 is not allowed: model.residual needs"),
        (
            [*TINY, "normalization=groupnorm", "normalization.groups=3"],
            "normalization.groups=3 is not allowed: must divide every layer's width",
        ),
        (
            [*TINY, "experiment=transfer", "model=cnn", "transfer.trainable_from=stage_3"],
            "transfer.trainable_from='stage_3' is not allowed: all, none, a stage stage_1..stage_2"
            " or a hidden block hidden_01..hidden_09",
        ),
        (
            ["normalization=groupnorm", "normalization.groups=7"],
            "normalization.groups=7 is not allowed: must divide every layer's width "
            "(model.hidden has 300",
        ),
    ],
)
def test_bad_conv_values_fail_in_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as caught:
        typed(*overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_cnn_run_through_the_entry_point_records_what_a_dense_run_records(workspace):
    tiny = [
        *FAST, "training.epochs=1", "data.image_size=8", "data.train_size=192",
        "data.validation_size=64", "data.test_size=32", "diagnostics.plots=true",
        "activation=relu",
    ]  # fmt: skip
    cnn = ["model=cnn", "model.filters=[4,8]", "model.blocks=[2,1]", "model.hidden=[8]"]
    assert workspace.train(*tiny, *cnn) == 0
    assert workspace.train(*tiny, "model.hidden=[8,8,8,8]") == 0
    conv_run, dense_run = workspace.runs()
    assert conv_run.info.status == dense_run.info.status == "FINISHED"
    assert conv_run.data.tags["choice.model"] == "cnn"
    assert conv_run.data.params["model.kind"] == "conv"
    assert set(conv_run.data.metrics) == set(dense_run.data.metrics)
    assert "layers/grad/signal_std/layer_04" in conv_run.data.metrics
    assert "layers/act/dead_frac/layer_01" in conv_run.data.metrics
    assert conv_run.data.tags["gradient_health"] in ("healthy", "vanishing", "dying")
    client = workspace.client()
    plots = {a.path for a in client.list_artifacts(conv_run.info.run_id, "plots")}
    assert {"plots/gradient_signal_heatmap.png", "plots/depth_profiles.png"} <= plots
