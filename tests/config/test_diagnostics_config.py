"""The diagnostics config group: defaults, overrides and range checks (no TensorFlow)."""

from __future__ import annotations

import pytest
from helpers.compose import compose
from hydra.errors import ConfigCompositionException

from experiments.config.checks import ConfigError, validate


def test_on_by_default_with_a_512_image_probe_every_epoch():
    cfg = validate(compose())
    assert cfg.diagnostics.enabled is True
    assert cfg.diagnostics.every_n_epochs == 1
    assert cfg.diagnostics.probe_size == 512
    assert cfg.diagnostics.plots is True
    assert cfg.diagnostics.step_norm is True


def test_switched_off_and_tuned_from_the_command_line():
    cfg = validate(
        compose(
            [
                "diagnostics.enabled=false",
                "diagnostics.every_n_epochs=3",
                "diagnostics.probe_size=64",
            ]
        )
    )
    assert (cfg.diagnostics.enabled, cfg.diagnostics.every_n_epochs) == (False, 3)
    assert cfg.diagnostics.probe_size == 64


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("diagnostics.every_n_epochs=0", "diagnostics.every_n_epochs"),
        ("diagnostics.probe_size=0", "diagnostics.probe_size"),
    ],
)
def test_out_of_range_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=rf"^{key}=0 is not allowed: must be >= 1$"):
        validate(compose([override]))


def test_a_misspelt_key_fails_at_compose_time():
    with pytest.raises(ConfigCompositionException, match="probe_sise"):
        compose(["diagnostics.probe_sise=64"])
