"""Published claims about conv nets, reproduced at initialization in seconds: He et al.
2015's initialization for conv layers, BN's per-channel statistics (Ioffe & Szegedy
2015, section 3.2), GroupNorm's independence of the batch (Wu & He 2018). Tolerances
come from values measured here over seeds 0-4 (given in the comments), with margin."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers.nets import build_net

from experiments.diagnostics import verdict
from experiments.diagnostics.probe import Probe, hidden_blocks
from experiments.diagnostics.record import DiagnosticsRecord
from experiments.models.taps import Taps

pytestmark = pytest.mark.xdist_group("diagnostics.test_conv_papers")

# 30 conv-ReLU layers of 64 channels, 3x3, zero padding, no pooling, no normalization.
CONV30 = [
    "model=cnn",
    "model.filters=[64]",
    "model.blocks=[30]",
    "model.downsample=pool",
    "activation=relu",
    "normalization=none",
]
HE = ["init=he_normal"]
# He's variance 2/fan_in halved (LeCun's 1/fan_in), the same truncated normal: every
# kernel is He's, drawn from the same seed, times 1/sqrt(2).
HALF = [
    "init=variance_scaling",
    "init.scale=1.0",
    "init.mode=fan_in",
    "init.distribution=truncated_normal",
]
SIDE = 16


def conv30(init: list[str], seed: int = 0):
    return build_net(*CONV30, *init, input_shape=(SIDE, SIDE, 1), seed=seed)[1]


def pre_activation_variances(model, x) -> np.ndarray:
    acts = [b.activation for b in hidden_blocks(model)]
    _, pre, _ = Taps(model, inputs_of=acts)(x, training=False)
    return np.array([float(np.var(s)) for s in pre])


def padding_loss(side: int, layers: int) -> np.ndarray:
    """The share of the first layer's variance left at each layer by the zero padding
    alone. With He init each 3x3 neighbour q inside the map gives p its variance times
    fan_in * Var(w) / 2 / 9 = 1/9 (the ReLU passes half), so E[Var s_l(p)] is the mean of
    E[Var s_(l-1)] over p's nine neighbours, those outside the map counting 0; the
    first layer reads the image, the same at every position."""
    inside = np.pad(np.ones((side, side)), 1)

    def spread(v: np.ndarray) -> np.ndarray:
        total = sum(
            np.roll(np.roll(v, dy, axis=0), dx, axis=1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
        )
        return total / 9.0 * inside

    v = spread(inside)
    first = v.sum()
    kept = [1.0]
    for _ in range(layers - 1):
        v = spread(v)
        kept.append(v.sum() / first)
    return np.array(kept)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, SIDE, SIDE, 1)).astype(np.float32)
    return x, rng.integers(0, 10, size=8).astype(np.int32)


def judged(values: dict[str, np.ndarray]) -> verdict.Verdict:
    layers = len(values["grad/signal_std"])
    names = [f"hidden_{i:02d}" for i in range(1, layers + 1)]
    record = DiagnosticsRecord(names, "relu", 8, tuple(values))
    record.add_probe(0, values)
    return verdict.judge(record)


def test_he_2015_conv_30_layers_he_init_keeps_the_pre_activation_variance_a_smaller_scale_shrinks_it(
    images,
):
    """He et al. 2015 (section 2.2, for conv layers: n = k*k*c_in): with Var(w) = 2/n the
    variance of a ReLU net's pre-activations is the same at every layer, in expectation.

    The bound: every layer within a factor 20 of the first (about an order of
    magnitude), and within [1/8, 4] times what the zero padding alone leaves, for two
    effects the derivation leaves out, both shrinking: (1) zero padding: 29 layers on
    16x16 maps keep 0.41 of the variance (`padding_loss`, exact in expectation);
    (2) finite width: with 64 channels log Var drifts by about -2/64 a layer, with a
    spread of the same order (Hanin & Rolnick 2018: both scale as 1/width). Measured
    over seeds 0-4 (8 images): layer 30 / layer 1 0.10 to 0.42, every layer between
    0.07 and 1.5 times the first, 0.25 to 1.5 times the padding's share.

    With a scale too small by a constant (Var(w) = 1/n, half of He's), every layer
    multiplies the variance by 1/2: ReLU is positively homogeneous and the kernels are
    He's times 1/sqrt(2) (the same seed), so Var_l(half) = 2^-l Var_l(He), exactly; 30
    layers shrink it by 2^-29 = 1.9e-9 more than He's."""
    x, y = images
    he_model, half_model = conv30(HE), conv30(HALF)
    he, half = pre_activation_variances(he_model, x), pre_activation_variances(half_model, x)
    assert len(he) == 30
    padding = padding_loss(SIDE, 30)
    assert padding[-1] == pytest.approx(0.41, abs=0.01)

    assert np.all(he / he[0] > 1 / 20) and np.all(he / he[0] < 20)
    assert np.all(he / he[0] / padding > 1 / 8) and np.all(he / he[0] / padding < 4)
    # Geometric shrinkage: layer l is 2^-l of He's, to float32 rounding.
    np.testing.assert_allclose(half / he, 0.5 ** np.arange(1, 31), rtol=1e-3)
    assert half[-1] / half[0] < 1e-7

    # The verdicts read the conv layers as they read dense ones: depth_ratio (std of
    # dL/ds, first / last) measured 0.48 to 1.5 with He init over seeds 0-4 (at most 5%
    # dead channels); with the half scale the gradient shrinks too, by sqrt(2) a layer
    # (2^-14.5 = 4e-5): measured 2.1e-5 to 4.7e-5.
    he_values = Probe(he_model, x, y, "relu")()
    half_values = Probe(half_model, x, y, "relu")()
    assert judged(he_values).health == verdict.HEALTHY
    assert judged(half_values).health == verdict.VANISHING


def norm_net(normalization: list[str], seed: int = 0):
    return build_net(
        "model=cnn",
        "model.filters=[4]",
        "model.blocks=[1]",
        "model.downsample=pool",
        "activation=relu",
        "init=he_normal",
        *normalization,
        input_shape=(8, 8, 3),
        seed=seed,
    )[1]


def normalized(model, x, training: bool):
    """The first block's pre-activation: the normalization layer's output."""
    (block,) = hidden_blocks(model)
    _, (s,), _ = Taps(model, inputs_of=[block.activation])(x, training=training)
    return np.asarray(s)


def color_images(n: int, seed: int = 0) -> np.ndarray:
    """Channels of very different means and scales, positions of different means."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 3.0, 8)[None, :, None, None]
    scale = np.array([0.1, 1.0, 10.0])
    return (rng.normal(size=(n, 8, 8, 3)) * scale + ramp + scale).astype(np.float32)


def test_ioffe_szegedy_2015_batchnorm_in_a_conv_net_normalizes_each_channel_over_batch_and_positions():
    """Ioffe & Szegedy 2015, section 3.2: for convolutional layers BN learns a pair
    gamma, beta per feature map (channel), not per activation, and normalizes each
    channel over the mini-batch and every position. In training mode each channel of the
    normalized conv output has mean 0 and std 1 over (batch, H, W); a single position
    is not normalized on its own."""
    x = color_images(32)
    model = norm_net(
        ["normalization=batchnorm", "normalization.position=before", "normalization.input_bn=false"]
    )
    bn = model.get_layer("hidden_01_bn")
    assert isinstance(bn, keras.layers.BatchNormalization)
    assert [tuple(w.shape) for w in bn.weights] == [(4,)] * 4  # gamma, beta, moving mean, var
    s = normalized(model, x, training=True)
    np.testing.assert_allclose(s.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(s.std(axis=(0, 1, 2)), 1.0, atol=1e-2)  # epsilon 1e-3
    per_position = s.mean(axis=0)  # [H, W, C]: the ramp across the image stays
    assert np.abs(per_position).max() > 0.1


def test_wu_he_2018_groupnorm_statistics_do_not_depend_on_the_batch():
    """Wu & He 2018: GroupNorm computes its mean and variance per example, over each
    group of channels and every position, so an example's output is the same alone, in
    any batch, in training or inference; BN's output in training depends on the batch.
    Each (example, group) of the output has mean 0 and std 1."""
    x = color_images(16)
    x[8:] *= 5.0  # a second half unlike the first
    gn = norm_net(
        ["normalization=groupnorm", "normalization.position=before", "normalization.groups=2"]
    )
    alone = normalized(gn, x[:1], training=True)
    for batch, index in ((x[:8], 0), (x, 0), (x[::-1], len(x) - 1)):
        in_batch = normalized(gn, batch, training=True)[index : index + 1]
        np.testing.assert_allclose(in_batch, alone, atol=1e-5)
    np.testing.assert_allclose(normalized(gn, x[:1], training=False), alone, atol=1e-5)
    groups = normalized(gn, x, training=True).reshape(16, 8, 8, 2, 2)  # [n, H, W, group, channel]
    np.testing.assert_allclose(groups.mean(axis=(1, 2, 4)), 0.0, atol=1e-4)
    np.testing.assert_allclose(groups.std(axis=(1, 2, 4)), 1.0, atol=1e-2)

    bn = norm_net(
        ["normalization=batchnorm", "normalization.position=before", "normalization.input_bn=false"]
    )
    bn_alone = normalized(bn, x[:1], training=True)
    bn_in_batch = normalized(bn, x, training=True)[:1]
    assert np.abs(bn_in_batch - bn_alone).max() > 0.1
