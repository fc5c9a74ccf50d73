"""Every model variant the config groups can build, layer by layer; the optimizers."""

from __future__ import annotations

import keras
import pytest
from helpers.compose import compose

from experiments.config.checks import validate
from experiments.models.nets import build_model
from experiments.training.optimizers import make_optimizer

ACTIVATION_LAYERS = {
    "leaky_relu": keras.layers.LeakyReLU,
    "prelu": keras.layers.PReLU,
    "elu": keras.layers.ELU,
}


def build(*overrides: str, input_shape=(28, 28), num_classes=10):
    cfg = validate(compose(list(overrides)))
    model = build_model(
        cfg.model, cfg.init, cfg.activation, cfg.normalization, input_shape, num_classes
    )
    return cfg, model


def kinds(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


@pytest.mark.parametrize(
    "activation", ["sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "swish"]
)
def test_each_activation_is_its_own_layer_after_a_linear_dense(activation):
    _, model = build(f"activation={activation}")
    dense = [
        layer
        for layer in model.layers
        if layer.name.startswith("hidden_") and layer.name[-2:].isdigit()
    ]
    assert [layer.units for layer in dense] == [300, 100]
    for layer in dense:
        assert layer.activation is keras.activations.linear and layer.use_bias
        act = model.get_layer(f"{layer.name}_act")
        expected = ACTIVATION_LAYERS.get(activation, keras.layers.Activation)
        assert isinstance(act, expected)
        if expected is keras.layers.Activation:
            assert act.activation is keras.activations.get(activation)  # swish is silu
    assert model.get_layer("output").activation is keras.activations.softmax
    assert model.output_shape == (None, 10)


def test_the_default_model_is_the_notebooks_leaky_relu_net():
    _, model = build()
    assert kinds(model) == ["Flatten", "Dense", "LeakyReLU", "Dense", "LeakyReLU", "Dense"]
    assert model.get_layer("hidden_01_act").negative_slope == pytest.approx(0.3)
    assert isinstance(model.get_layer("hidden_01").kernel_initializer, keras.initializers.HeNormal)
    assert model.count_params() == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10


def test_leaky_relu_slope_and_elu_alpha_reach_the_layers():
    _, leaky = build("activation.negative_slope=0.01")
    assert leaky.get_layer("hidden_02_act").negative_slope == pytest.approx(0.01)
    _, elu = build("activation=elu", "activation.alpha=0.5")
    assert elu.get_layer("hidden_02_act").alpha == pytest.approx(0.5)


def test_batchnorm_after_matches_the_notebooks_first_bn_net():
    _, model = build("experiment=batchnorm_after")
    assert kinds(model) == [
        "Flatten", "BatchNormalization", "Dense", "Activation", "BatchNormalization",
        "Dense", "Activation", "BatchNormalization", "Dense",
    ]  # fmt: skip
    assert all(layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Dense))
    # The notebook's model.summary(): 3,136 + 235,500 + 1,200 + 30,100 + 400 + 1,010.
    assert model.count_params() == 271_346


def test_batchnorm_before_drops_the_bias_and_normalizes_before_the_activation():
    _, model = build("experiment=batchnorm_before")
    assert kinds(model) == [
        "Flatten", "BatchNormalization", "Dense", "BatchNormalization", "Activation",
        "Dense", "BatchNormalization", "Activation", "Dense",
    ]  # fmt: skip
    assert not model.get_layer("hidden_01").use_bias and not model.get_layer("hidden_02").use_bias
    assert model.get_layer("output").use_bias
    assert model.count_params() == 3136 + 235_200 + 1200 + 30_000 + 400 + 1010


def test_input_batchnorm_can_be_left_out():
    _, model = build("normalization=batchnorm", "normalization.input_bn=false")
    assert kinds(model)[:2] == ["Flatten", "Dense"]


@pytest.mark.parametrize(
    "init,cls",
    [
        ("glorot_uniform", keras.initializers.GlorotUniform),
        ("glorot_normal", keras.initializers.GlorotNormal),
        ("he_normal", keras.initializers.HeNormal),
        ("he_uniform", keras.initializers.HeUniform),
        ("lecun_normal", keras.initializers.LecunNormal),
        ("lecun_uniform", keras.initializers.LecunUniform),
        ("orthogonal", keras.initializers.Orthogonal),
    ],
)
def test_named_initializers_reach_every_hidden_kernel(init, cls):
    _, model = build(f"init={init}", "model.hidden=[40,30,20]")
    for name in ("hidden_01", "hidden_02", "hidden_03"):
        assert isinstance(model.get_layer(name).kernel_initializer, cls)


def test_variance_scaling_settings_reach_the_initializer():
    _, model = build("init=variance_scaling")
    init = model.get_layer("hidden_01").kernel_initializer
    assert isinstance(init, keras.initializers.VarianceScaling)
    assert (init.scale, init.mode, init.distribution) == (2.0, "fan_avg", "uniform")
    _, other = build(
        "init=variance_scaling",
        "init.scale=0.5",
        "init.mode=fan_out",
        "init.distribution=untruncated_normal",
    )
    init = other.get_layer("hidden_02").kernel_initializer
    assert (init.scale, init.mode, init.distribution) == (0.5, "fan_out", "untruncated_normal")


def test_random_normal_is_plain_n_0_stddev():
    _, model = build("init=random_normal", "init.stddev=2.0", "model.hidden=[500]")
    init = model.get_layer("hidden_01").kernel_initializer
    assert isinstance(init, keras.initializers.RandomNormal) and init.stddev == 2.0
    kernel = keras.ops.convert_to_numpy(model.get_layer("hidden_01").kernel)
    assert abs(kernel.std() - 2.0) < 0.02 and abs(kernel.mean()) < 0.02


def test_the_deep_preset_has_a_hundred_hidden_layers():
    _, model = build("experiment=selu_deep")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [300] + [100] * 99 + [10]
    assert dense[-2].name == "hidden_100"
    assert all(
        isinstance(layer.kernel_initializer, keras.initializers.LecunNormal) for layer in dense[:-1]
    )


def test_input_shape_and_class_count_come_from_the_data():
    _, model = build("model.hidden=[8]", input_shape=(12, 12), num_classes=3)
    assert model.input_shape == (None, 12, 12) and model.output_shape == (None, 3)


@pytest.mark.parametrize(
    "overrides,cls,expected",
    [
        (["optimizer=sgd", "optimizer.momentum=0.9", "optimizer.nesterov=true"], keras.optimizers.SGD,
         {"momentum": 0.9, "nesterov": True}),
        (["optimizer=adam"], keras.optimizers.Adam, {"beta_1": 0.9, "beta_2": 0.999}),
        (["optimizer=nadam", "optimizer.beta_1=0.8"], keras.optimizers.Nadam, {"beta_1": 0.8}),
        (["optimizer=rmsprop", "optimizer.rho=0.95"], keras.optimizers.RMSprop, {"rho": 0.95}),
        (["optimizer=adagrad", "optimizer.initial_accumulator_value=0.2"], keras.optimizers.Adagrad,
         {"initial_accumulator_value": 0.2}),
        (["optimizer=adamax", "optimizer.beta_2=0.99"], keras.optimizers.Adamax, {"beta_2": 0.99}),
        (["optimizer=adamw", "optimizer.weight_decay=1e-5"], keras.optimizers.AdamW,
         {"weight_decay": 1e-5, "beta_1": 0.9}),
        (["clipping=value"], keras.optimizers.SGD, {"clipvalue": 1.0, "clipnorm": None}),
        (["clipping=norm", "clipping.threshold=0.5"], keras.optimizers.SGD, {"clipnorm": 0.5}),
        (["clipping=global_norm"], keras.optimizers.SGD, {"global_clipnorm": 1.0, "clipnorm": None}),
        (["clipping=none"], keras.optimizers.SGD,
         {"clipvalue": None, "clipnorm": None, "global_clipnorm": None}),
    ],
)  # fmt: skip
def test_optimizer_and_clipping_reach_keras(overrides, cls, expected):
    cfg = validate(compose(["optimizer.learning_rate=0.02", *overrides]))
    optimizer = make_optimizer(cfg.optimizer, cfg.clipping)
    assert isinstance(optimizer, cls)
    config = optimizer.get_config()
    assert config["learning_rate"] == pytest.approx(0.02)
    for key, value in expected.items():
        assert config[key] == (pytest.approx(value) if isinstance(value, float) else value), key
