"""The sweep-related config options compose and validate without TensorFlow."""

from __future__ import annotations

from helpers.compose import compose

import experiments.config.schema  # noqa: F401  (stores the config schema that compose needs)
from experiments.config.checks import validate


def test_the_optuna_search_maximizes_val_accuracy_over_the_deep_net():
    cfg = compose(["hparams_search=optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("gradlab_optuna_sweeper.optuna_sweeper.OptunaStudySweeper")
    assert sweeper.direction == "maximize"
    assert list(sweeper.objectives) == ["val_accuracy"] and sweeper.seeds_per_trial == 1
    assert sweeper.study_name == "gradient-lab"  # the MLflow experiment's
    assert sweeper.storage is None  # optuna.db in the launch folder
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert set(sweeper.params) == {"optimizer.learning_rate", "clipping.threshold", "init"}
    assert sweeper.max_failure_rate == 1.0
    assert cfg.hydra.mode.name == "MULTIRUN"
    typed = validate(compose(["hparams_search=optuna"]))
    assert typed.model.repeat == 99 and typed.clipping.name.value == "norm"


def test_the_server_option_points_at_the_loopback_server():
    typed = validate(compose(["tracking=server"]))
    assert typed.tracking.uri == "http://127.0.0.1:5001"
    assert typed.tracking.skip_finished is True


def test_resuming_is_on_by_default_and_can_be_turned_off(cfg_train):
    assert validate(cfg_train).tracking.skip_finished is True
    assert validate(compose(["tracking.skip_finished=false"])).tracking.skip_finished is False
