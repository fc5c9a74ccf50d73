"""The gradient verdict on records built by hand (NumPy only): each word, the order in
which they win, the layer, the epoch and the numbers in the reason."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.diagnostics import verdict
from experiments.diagnostics.record import DiagnosticsRecord

LAYERS = 5


def record(signals, activation="relu", dead=None, saturated=None, failure=None):
    """A record with one probe step per row of `signals` (per-layer gradient signal std)."""
    names = [f"hidden_{i:02d}" for i in range(1, LAYERS + 1)]
    stats = {"grad/signal_std": [list(map(float, row)) for row in signals]}
    if dead is not None:
        stats["act/dead_frac"] = dead
    if saturated is not None:
        stats["act/saturated_frac"] = saturated
    found = DiagnosticsRecord(names, activation, 64, tuple(stats), list(range(len(signals))))
    found.stats = stats
    found.depth_ratio = [row[0] / row[-1] for row in signals]
    found.failure = failure
    return found


def falling(gain: float) -> list[float]:
    """Signal std that changes by `gain` per block towards the input."""
    return [gain ** (LAYERS - layer) for layer in range(1, LAYERS + 1)]


FLAT = [1.0] * LAYERS


def test_a_flat_signal_is_healthy_and_says_its_range():
    found = verdict.judge(record([FLAT, falling(0.9)], dead=[[0.1] * LAYERS] * 2))
    assert found.health == verdict.HEALTHY
    assert (found.layer, found.epoch) == ("", None)
    assert "depth_ratio 0.66 to 1 over 2 probe steps" in found.reason
    assert "at most 10% dead units" in found.reason


def test_a_signal_a_hundred_times_smaller_at_the_input_is_vanishing():
    found = verdict.judge(record([FLAT, falling(0.3)]))  # 0.3**4 = 0.0081 at epoch 1
    assert found.health == verdict.VANISHING
    assert found.epoch == 1
    # 0.3**2 = 0.09 < 0.1 at hidden_03; 0.3 at hidden_04 is not below.
    assert found.layer == "hidden_03"
    assert "depth_ratio 0.0081 at epoch 1 (threshold 0.1)" in found.reason


def test_a_signal_growing_towards_the_input_is_exploding():
    found = verdict.judge(record([falling(2.0)]))  # 16 at hidden_01
    assert (found.health, found.layer, found.epoch) == (verdict.EXPLODING, "hidden_01", 0)
    assert "depth_ratio 16" in found.reason


def test_thresholds_sit_where_documented():
    t = verdict.THRESHOLDS
    just_inside = record([[t.vanishing_ratio * 1.01] + [1.0] * (LAYERS - 1)])
    assert verdict.judge(just_inside).health == verdict.HEALTHY
    just_outside = record([[t.vanishing_ratio * 0.99] + [1.0] * (LAYERS - 1)])
    assert verdict.judge(just_outside).health == verdict.VANISHING
    assert verdict.judge(record([[t.exploding_ratio * 1.01] + FLAT[1:]])).health == "exploding"


def test_dead_units_make_a_relu_run_dying_and_name_the_worst_layer():
    dead = [[0.1] * LAYERS, [0.2, 0.5, 0.85, 0.3, 0.1]]
    found = verdict.judge(record([FLAT, FLAT], dead=dead))
    assert (found.health, found.layer, found.epoch) == (verdict.DYING, "hidden_03", 1)
    assert "85% of hidden_03's units dead" in found.reason


def test_saturated_outputs_make_a_sigmoid_run_saturating():
    saturated = [[0.0, 0.1, 0.2, 0.4, 0.6]]
    found = verdict.judge(record([FLAT], activation="sigmoid", saturated=saturated))
    assert (found.health, found.layer, found.epoch) == (verdict.SATURATING, "hidden_05", 0)


def test_the_most_severe_condition_wins_whenever_it_appeared():
    # Dying from epoch 0, vanishing only at epoch 1: vanishing is the more severe.
    dead = [[0.9] * LAYERS, [0.9] * LAYERS]
    found = verdict.judge(record([FLAT, falling(0.1)], dead=dead))
    assert (found.health, found.epoch) == (verdict.VANISHING, 1)
    assert verdict.SEVERITY.index("diverged") < verdict.SEVERITY.index("exploding")


def test_a_condition_that_passed_is_named_but_is_not_the_verdict():
    # As the 100-layer SELU net on the real data: depth_ratio 26 at initialization, 1.2
    # to 1.4 from the first epoch on.
    found = verdict.judge(record([falling(2.5)] + [FLAT] * 5))
    assert found.health == verdict.HEALTHY
    assert "passed: exploding at 1 probe step (depth_ratio 39 at epoch 0" in found.reason


def test_a_condition_that_held_at_most_steps_counts_even_if_it_ended():
    found = verdict.judge(record([falling(0.3)] * 3 + [FLAT]))
    assert (found.health, found.epoch) == (verdict.VANISHING, 0)
    assert found.reason.endswith("held at 3 of 4 probe steps")
    assert verdict.judge(record([falling(0.3)] * 2 + [FLAT] * 2)).health == verdict.HEALTHY


def test_a_non_finite_loss_is_diverged_with_or_without_diagnostics():
    failure = {"epoch": 2, "step": 7, "where": "forward", "layer": 4, "reason": "x"}
    found = verdict.judge(record([falling(0.05)], failure=failure), 2, "non-finite loss at 2")
    assert (found.health, found.layer, found.epoch) == (verdict.DIVERGED, "hidden_04", 2)
    assert found.reason == "non-finite loss at 2"
    bare = verdict.judge(None, 1, "non-finite training loss (nan) at epoch 1")
    assert (bare.health, bare.layer, bare.epoch) == (verdict.DIVERGED, "", 1)


def test_a_non_finite_gradient_under_a_finite_loss_is_exploding():
    failure = {"epoch": 0, "step": 3, "where": "backward", "layer": 2, "reason": "x"}
    found = verdict.judge(record([FLAT], failure=failure), 0, "non-finite gradient norm")
    assert (found.health, found.layer) == (verdict.EXPLODING, "hidden_02")


def test_without_diagnostics_a_finite_run_is_unknown():
    found = verdict.judge(None)
    assert found.health == verdict.UNKNOWN
    assert "diagnostics.enabled=false" in found.reason


def test_non_finite_probe_values_are_skipped_not_judged():
    found = verdict.judge(record([[np.nan] * LAYERS, FLAT]))
    assert found.health == verdict.HEALTHY


def test_tags_are_the_four_searchable_strings():
    tags = verdict.judge(record([falling(0.3)])).tags()
    assert tags == {
        "gradient_health": "vanishing",
        "gradient_health_layer": "hidden_03",
        "gradient_health_epoch": "0",
        "gradient_health_reason": tags["gradient_health_reason"],
    }
    assert all(isinstance(v, str) for v in tags.values())


def test_combine_keeps_the_most_severe_part_and_names_it():
    parts = {
        "pretrain_A": verdict.Verdict("healthy", "fine"),
        "baseline_B": verdict.Verdict("vanishing", "depth_ratio 0.01", "hidden_02", 0),
        "B_on_A": verdict.Verdict("healthy", "fine"),
    }
    found = verdict.combine(parts)
    assert (found.health, found.layer, found.epoch) == ("vanishing", "hidden_02", 0)
    assert found.reason.startswith("baseline_B: depth_ratio 0.01")
    assert "pretrain_A healthy, B_on_A healthy" in found.reason
    assert verdict.combine({}).health == verdict.UNKNOWN


@pytest.mark.parametrize("health", verdict.SEVERITY)
def test_every_word_is_documented(health):
    from experiments.paths import CHECKOUT_DIR

    assert f"`{health}`" in (CHECKOUT_DIR / "docs" / "diagnostics.md").read_text()
