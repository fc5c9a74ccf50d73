"""The transfer config group: defaults, the preset's notebook numbers, value checks.
Composition and validation only: no TensorFlow."""

from __future__ import annotations

import pytest
from helpers.compose import compose

from experiments.config.checks import ConfigError, validate
from experiments.transfer.options import TransferName, first_unfrozen_block


def test_default_run_has_no_study():
    cfg = validate(compose())
    assert cfg.transfer.name is TransferName.none
    assert cfg.transfer.freeze_epochs is None


def test_preset_holds_the_notebooks_numbers():
    cfg = validate(compose(["experiment=transfer"]))
    t = cfg.transfer
    assert t.name is TransferName.study
    assert list(t.task_b_classes) == [5, 6]
    assert (t.train_size_b, t.baseline_epochs, t.freeze_epochs, t.finetune_epochs) == (
        200,
        20,
        4,
        16,
    )
    assert t.finetune_learning_rate == pytest.approx(1e-3)
    assert t.trainable_from == "all" and t.source_run_id is None
    assert cfg.model.hidden_sizes() == [300, 100, 50, 50, 50]
    assert cfg.activation.name.value == "selu"
    assert (cfg.optimizer.name.value, cfg.optimizer.learning_rate) == ("sgd", 1e-3)
    assert cfg.training.epochs == 20


def test_the_group_composes_without_the_preset():
    cfg = validate(compose(["transfer=study", "transfer.trainable_from=hidden_02"]))
    assert cfg.transfer.trainable_from == "hidden_02"
    assert cfg.model.hidden_sizes() == [300, 100]


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [
        (["transfer.task_b_classes=[5,5]"], "transfer.task_b_classes", "two distinct classes"),
        (["transfer.task_b_classes=[5,10]"], "transfer.task_b_classes", "in 0-9"),
        (["transfer.task_b_classes=[1,2,3]"], "transfer.task_b_classes", "two distinct"),
        (["transfer.train_size_b=0"], "transfer.train_size_b", ">= 1"),
        (["transfer.baseline_epochs=0"], "transfer.baseline_epochs", ">= 1"),
        (["transfer.freeze_epochs=-1"], "transfer.freeze_epochs", ">= 0"),
        (
            ["transfer.freeze_epochs=0", "transfer.finetune_epochs=0"],
            "transfer.finetune_epochs",
            "freeze + fine-tune",
        ),
        (["transfer.finetune_learning_rate=0"], "transfer.finetune_learning_rate", "> 0"),
        (["transfer.trainable_from=hidden_06"], "transfer.trainable_from", "hidden_05"),
        (["transfer.trainable_from=output"], "transfer.trainable_from", "all, none"),
        (["transfer.source_run_id=' '"], "transfer.source_run_id", "a run id"),
        (
            ["data=synthetic", "data.num_classes=3", "transfer.task_b_classes=[0,1]"],
            "data.num_classes",
            ">= 4",
        ),
        (["data=synthetic", "data.num_classes=5"], "transfer.task_b_classes", "in 0-4"),
    ],
)
def test_bad_values_name_the_key(overrides, key, allowed):
    with pytest.raises(ConfigError) as caught:
        validate(compose(["experiment=transfer", *overrides]))
    message = str(caught.value)
    assert message.startswith(f"{key}=") and allowed in message
    assert "\n" not in message


@pytest.mark.parametrize("override", ["transfer.freeze_epochs=2", "transfer.source_run_id=abc"])
def test_study_keys_without_the_study_are_refused(override):
    with pytest.raises(ConfigError, match="only transfer=study uses it"):
        validate(compose([override]))


@pytest.mark.parametrize(
    ("spec", "first"),
    [
        ("all", 1),
        ("hidden_01", 1),
        ("hidden_03", 3),
        ("hidden_3", 3),
        ("none", None),
        ("hidden_00", None),
        ("hidden_04", None),
        ("output", None),
    ],
)
def test_first_unfrozen_block(spec, first):
    assert first_unfrozen_block(spec, n_blocks=3) == first
