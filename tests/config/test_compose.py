"""Composition of every option and preset, and the schema's checks. No TensorFlow here."""

from __future__ import annotations

import pytest
from helpers.compose import compose
from hydra.errors import ConfigCompositionException, MissingConfigException

from experiments.config.checks import ConfigError, validate
from experiments.paths import CONF_DIR

GROUPS = [
    "data",
    "model",
    "init",
    "activation",
    "normalization",
    "clipping",
    "optimizer",
    "schedule",
    "training",
    "tracking",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def presets() -> list[str]:
    return options("experiment")


# Options that read the user's files validate once they name them (any name: nothing is read).
NAMED_FILES = {
    ("data", "mnist"): ["data.dir=mnist-folder"],
    ("data", "cifar10"): ["data.dir=cifar-10-batches-bin"],
    ("data", "npz"): ["data.path=images.npz"],
}


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_every_option_of_every_group_composes_and_validates(group, option):
    cfg = validate(compose([f"{group}={option}", *NAMED_FILES.get((group, option), [])]))
    node = getattr(cfg, group)
    if hasattr(node, "name"):
        assert node.name.value == option


def test_the_groups_offer_what_the_issue_lists():
    assert set(options("init")) >= {
        "glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
        "lecun_uniform", "orthogonal", "variance_scaling", "random_normal",
    }  # fmt: skip
    assert set(options("activation")) >= {
        "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "swish",
    }  # fmt: skip
    assert set(options("normalization")) >= {"none", "batchnorm", "layernorm"}
    assert set(options("clipping")) >= {"none", "value", "norm", "global_norm"}
    assert set(options("optimizer")) >= {
        "sgd", "adam", "nadam", "rmsprop", "adagrad", "adamax", "adamw",
    }  # fmt: skip
    assert set(options("schedule")) >= {
        "constant", "exponential", "power", "piecewise", "performance", "one_cycle",
        "warmup_cosine",
    }  # fmt: skip
    assert set(options("data")) >= {"fashion_mnist", "synthetic"}


def test_default_run_is_the_notebooks_first_network(cfg_train):
    cfg = validate(cfg_train)
    assert cfg.model.hidden_sizes() == [300, 100]
    assert cfg.init.name.value == "he_normal"
    assert cfg.activation.name.value == "leaky_relu" and cfg.activation.negative_slope == 0.3
    assert cfg.normalization.name.value == "none" and cfg.clipping.name.value == "none"
    assert cfg.optimizer.name.value == "sgd" and cfg.optimizer.learning_rate == 1e-3
    assert cfg.data.name.value == "fashion_mnist" and cfg.data.validation_size == 5000
    assert (cfg.training.batch_size, cfg.training.seed) == (32, 42)


@pytest.mark.parametrize("preset", presets())
def test_every_preset_composes_and_validates(preset):
    validate(compose([f"experiment={preset}"]))


@pytest.mark.parametrize("preset", presets())
def test_every_preset_says_its_whole_purpose(preset):
    """The opening comment, all its lines: the run's description and the chapter's page
    show it (its first line alone stopped mid-sentence for seven presets)."""
    from experiments.config.presets import purpose

    text = purpose(preset)
    assert text and text.endswith((".", ")")) and "  " not in text, text


def test_presets_keep_the_notebooks_hyperparameters():
    selu = validate(compose(["experiment=selu_deep"]))
    assert selu.model.hidden_sizes() == [300] + [100] * 99
    assert (selu.activation.name.value, selu.init.name.value) == ("selu", "lecun_normal")
    assert selu.data.standardize and selu.training.epochs == 5
    relu = validate(compose(["experiment=relu_deep"]))
    assert relu.model.hidden_sizes() == selu.model.hidden_sizes()
    assert (relu.activation.name.value, relu.init.name.value) == ("relu", "he_normal")
    for name in ("leaky_relu", "prelu", "elu"):
        cfg = validate(compose([f"experiment={name}"]))
        assert cfg.activation.name.value == name and cfg.init.name.value == "he_normal"
        assert cfg.model.hidden_sizes() == [300, 100] and cfg.training.epochs == 10
        assert cfg.optimizer.learning_rate == 1e-3
    for name, position in (("batchnorm_after", "after"), ("batchnorm_before", "before")):
        cfg = validate(compose([f"experiment={name}"]))
        assert cfg.normalization.position.value == position and cfg.normalization.input_bn
        assert cfg.activation.name.value == "relu" and cfg.training.epochs == 10
    for name, mode in (("clip_value", "value"), ("clip_norm", "norm")):
        cfg = validate(compose([f"experiment={name}"]))
        assert cfg.clipping.name.value == mode and cfg.clipping.threshold == 1.0


def test_the_later_remedies_presets_change_one_thing_each():
    cfg = {
        name: validate(compose([f"experiment={name}"]))
        for name in ("relu_deep", "residual_deep", "layernorm_deep", "leaky_relu", "one_cycle",
                     "momentum", "nesterov", "adamw")
    }  # fmt: skip
    relu, residual, layernorm = cfg["relu_deep"], cfg["residual_deep"], cfg["layernorm_deep"]
    for deep in (residual, layernorm):
        assert deep.model.hidden_sizes() == relu.model.hidden_sizes()
        assert (deep.activation, deep.init, deep.optimizer) == (
            relu.activation,
            relu.init,
            relu.optimizer,
        )
        assert (deep.training.epochs, deep.data.standardize) == (5, True)
    assert residual.model.residual and not relu.model.residual
    assert residual.normalization.name.value == "none"
    assert layernorm.normalization.name.value == "layernorm" and not layernorm.model.residual
    first = cfg["leaky_relu"]
    for name, optimizer, schedule in (
        ("one_cycle", "sgd", "one_cycle"), ("momentum", "sgd", "constant"),
        ("nesterov", "sgd", "constant"), ("adamw", "adamw", "constant"),
    ):  # fmt: skip
        assert cfg[name].model == first.model and cfg[name].activation == first.activation, name
        assert (cfg[name].optimizer.name.value, cfg[name].schedule.name.value) == (
            optimizer,
            schedule,
        )
    assert (cfg["momentum"].optimizer.momentum, cfg["momentum"].optimizer.nesterov) == (0.9, False)
    assert (cfg["nesterov"].optimizer.momentum, cfg["nesterov"].optimizer.nesterov) == (0.9, True)
    assert cfg["adamw"].optimizer.weight_decay == 1e-5


def test_a_preset_still_takes_command_line_overrides():
    cfg = validate(compose(["experiment=selu_deep", "data=synthetic", "training.epochs=1"]))
    assert cfg.data.name.value == "synthetic" and cfg.training.epochs == 1
    assert cfg.activation.name.value == "selu"


def test_compact_deep_form_and_variance_scaling_settings():
    cfg = validate(compose(["model.hidden=[50]", "model.repeat=3", "model.repeat_width=20"]))
    assert cfg.model.hidden_sizes() == [50, 20, 20, 20]
    vs = validate(
        compose(["init=variance_scaling", "init.mode=fan_in", "init.distribution=truncated_normal"])
    )
    assert (vs.init.scale, vs.init.mode.value, vs.init.distribution.value) == (
        2.0,
        "fan_in",
        "truncated_normal",
    )


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["optimizer.learning_rate=0"], "optimizer.learning_rate=0.0 is not allowed: must be > 0"),
        (["optimizer.learning_rate=-1e-3"], "optimizer.learning_rate=-0.001 is not allowed: must be > 0"),
        (["clipping=norm", "clipping.threshold=0"], "clipping.threshold=0.0 is not allowed: must be > 0"),
        (["clipping=value", "clipping.threshold=null"], "clipping.threshold=None is not allowed: clipping=value needs a value"),
        (["model.hidden=[]"], "model.hidden=[] is not allowed: at least one hidden layer"),
        (["model.hidden=[300,0]"], "model.hidden[1]=0 is not allowed: layer sizes must be >= 1"),
        (["model.hidden=[-5]"], "model.hidden[0]=-5 is not allowed: layer sizes must be >= 1"),
        (["model.repeat=2", "model.repeat_width=0"], "model.repeat_width=0 is not allowed: must be >= 1"),
        (["training.batch_size=0"], "training.batch_size=0 is not allowed: must be >= 1"),
        (["training.epochs=0"], "training.epochs=0 is not allowed: must be >= 1"),
        (["activation.negative_slope=-0.1"], "activation.negative_slope=-0.1 is not allowed: must be >= 0"),
        (["activation=relu", "activation.alpha=2"], "activation.alpha=2.0 is not allowed: only activation=elu uses it"),
        (["init=random_normal", "init.stddev=0"], "init.stddev=0.0 is not allowed: must be > 0"),
        (["optimizer.momentum=1.5"], "optimizer.momentum=1.5 is not allowed: must be in [0, 1)"),
        (["optimizer.nesterov=true"], "optimizer.nesterov=True is not allowed: needs optimizer.momentum > 0"),
        (["data=synthetic", "data.validation_size=5000"], "data.validation_size=5000 is not allowed: must be < data.train_size"),
        (["data=mnist", "data.dir=null"], "data.dir=None is not allowed: data=mnist needs a value"),
        (["data=npz"], "data.path=None is not allowed: data=npz needs a value"),
        (["data=npz", "data.path=a.npz", "data.dir=b"], "data.dir='b' is not allowed: only data=fashion_mnist|mnist|cifar10 uses it"),
        (["data=synthetic", "data.path=a.npz"], "data.path='a.npz' is not allowed: only data=npz uses it"),
        (["data=cifar10", "data.dir=b", "data.train_size=50001"], "data.train_size=50001 is not allowed: must be <= 50000 (the training set)"),
        (["data.test_size=10001"], "data.test_size=10001 is not allowed: must be <= 10000 (the test set)"),
        (["data.train_size=100", "data.validation_size=100"], "data.validation_size=100 is not allowed: must be < data.train_size"),
        (["data=npz", "data.path=a.npz", "data.test_size=0"], "data.test_size=0 is not allowed: must be >= 1"),
        (["tracking.experiment=' '"], "tracking.experiment=' ' is not allowed"),
        (["model.residual=true", "model.residual_every=0"], "model.residual_every=0 is not allowed: must be >= 1"),
        (["experiment=transfer", "model.residual=true"], "model.residual=True is not allowed: transfer=study reuses a dense net as a chain of layers"),
        (["normalization=layernorm", "normalization.input_bn=true"], "normalization.input_bn=True is not allowed: only normalization=batchnorm uses it"),
        (["optimizer=adamw", "optimizer.weight_decay=-0.1"], "optimizer.weight_decay=-0.1 is not allowed: must be >= 0"),
        (["optimizer=sgd", "optimizer.weight_decay=0.01"], "optimizer.weight_decay=0.01 is not allowed: only optimizer=adamw uses it"),
        (["schedule=constant", "schedule.decay_rate=0.5"], "schedule.decay_rate=0.5 is not allowed: only schedule=exponential uses it"),
        (["schedule=exponential", "schedule.decay_rate=1.5"], "schedule.decay_rate=1.5 is not allowed: must be in (0, 1)"),
        (["schedule=piecewise", "schedule.boundaries=[5,5]", "schedule.factors=[1,1,1]"], "schedule.boundaries=[5, 5] is not allowed: increasing epochs, each >= 1"),
        (["schedule=piecewise", "schedule.factors=[1,0.5]"], "schedule.factors=[1.0, 0.5] is not allowed: 3 factors, one more than boundaries"),
        (["schedule=performance", "schedule.factor=1"], "schedule.factor=1.0 is not allowed: must be in (0, 1)"),
        (["schedule=one_cycle", "schedule.div_factor=0.5"], "schedule.div_factor=0.5 is not allowed: must be >= 1"),
        (["schedule=warmup_cosine", "schedule.warmup_fraction=null"], "schedule.warmup_fraction=None is not allowed: schedule=warmup_cosine needs a value"),
        (["schedule=warmup_cosine", "schedule.alpha=2"], "schedule.alpha=2.0 is not allowed: must be in [0, 1]"),
    ],
)  # fmt: skip
def test_bad_values_fail_with_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as caught:
        validate(compose(overrides))
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    "override,expected",
    [
        ("init.mode=sideways", "fan_in, fan_out, fan_avg"),
        ("init.distribution=gamma", "truncated_normal, untruncated_normal, uniform"),
        ("normalization.position=middle", "after, before"),
        ("training.batch_size=abc", "training.batch_size"),
        ("model.hidden=[a]", "model.hidden"),
    ],
)
def test_wrong_types_and_unknown_enum_values_fail_at_compose_time(override, expected):
    with pytest.raises(ConfigCompositionException) as caught:
        compose(["init=variance_scaling", "normalization=batchnorm", override])
    assert expected in str(caught.value) + str(caught.value.__cause__)


def test_unknown_option_gets_hydras_list_of_choices():
    with pytest.raises(MissingConfigException) as caught:
        compose(["activation=relu6"])
    text = str(caught.value)
    assert "Available options in 'activation'" in text
    for option in ("leaky_relu", "prelu", "selu"):
        assert option in text


def test_misspelt_key_is_rejected_at_compose_time():
    with pytest.raises(ConfigCompositionException) as caught:
        compose(["optimizer.learnin_rate=0.1"])
    assert "learnin_rate" in str(caught.value) + str(caught.value.__cause__)


def test_option_names_pickle_by_reference():
    """A sweep sends each job's composed config to other processes (joblib, Ray): the
    registry-made Enums must come back as the very same members."""
    import pickle

    from experiments.config.schema import GROUP_OPTIONS

    cfg = validate(compose(["experiment=transfer"]))
    for group in GROUP_OPTIONS:
        name = getattr(cfg, group).name
        assert pickle.loads(pickle.dumps(name)) is name, group


@pytest.mark.parametrize(
    "override, closest",
    [
        # Both groups were optional in the defaults list: Hydra skipped the missing
        # option and the notebook's first network ran under the mistyped name.
        ("experiment=selu_dep", ["selu_deep", "relu_deep"]),
        ("hparams_search=optunaa", ["optuna"]),
        ("activation=prelux", ["prelu", "relu", "elu"]),
    ],
)
def test_an_option_that_does_not_exist_is_refused_naming_the_closest(override, closest):
    from experiments.train import _config_error_line

    with pytest.raises(MissingConfigException) as caught:
        compose([override])
    hint = " or ".join(closest)
    assert _config_error_line(caught.value) == (
        f"{override} is not allowed: no such option (did you mean {hint}?)"
    )


def test_an_option_far_from_every_other_lists_the_groups_options():
    from experiments.train import _config_error_line

    with pytest.raises(MissingConfigException) as caught:
        compose(["experiment=zzz"])
    assert _config_error_line(caught.value) == (
        "experiment=zzz is not allowed: no such option (experiment is one of "
        + ", ".join(presets())
        + ")"
    )


def test_no_preset_and_no_search_is_still_the_default_run():
    cfg = compose([], return_hydra_config=True)
    choices = cfg.hydra.runtime.choices
    assert choices.experiment is None and choices.hparams_search is None


def test_an_experiment_name_over_mlflows_limit_is_a_config_error():
    from mlflow.utils.validation import MAX_EXPERIMENT_NAME_LENGTH

    from experiments.config.checks import MAX_EXPERIMENT_NAME

    assert MAX_EXPERIMENT_NAME == MAX_EXPERIMENT_NAME_LENGTH
    validate(compose([f"tracking.experiment={'x' * MAX_EXPERIMENT_NAME}"]))
    with pytest.raises(ConfigError) as caught:
        validate(compose([f"tracking.experiment={'x' * (MAX_EXPERIMENT_NAME + 1)}"]))
    text = str(caught.value)
    assert text.startswith("tracking.experiment='xxx")
    assert text.endswith("is not allowed: at most 500 characters (MLflow's limit), not 501")
    assert len(text) < 200  # the name is shown by its ends
