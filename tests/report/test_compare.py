"""Which differences the report names, and how its figures stay readable at scale
(runs built in memory: no store needed)."""

from __future__ import annotations

import itertools

import numpy as np
from matplotlib.figure import Figure

from experiments.diagnostics.record import DiagnosticsRecord
from experiments.report import claims, compare, figures, groups
from experiments.report.data import RunSummary


def make_run(index: int, choices: dict[str, str], params=None, val_accuracy=0.8, status="FINISHED"):
    return RunSummary(
        run_id=f"run{index:03d}",
        name=f"run {index}",
        status=status,
        choices=choices,
        params={k: str(v) for k, v in (params or {}).items()},
        metrics={"val_accuracy": val_accuracy},
        tags={},
        curves={
            "val_accuracy": [(e, val_accuracy * (e + 1) / 3) for e in range(3)],
            "loss": [(e, 1.0 / (e + 1)) for e in range(3)],
        },
    )


def keys(factors):
    return [f.key for f in factors]


def test_a_param_that_varies_with_its_group_is_not_a_factor_of_its_own():
    runs = [
        make_run(i, {"activation": a, "init": "he_normal"}, {"activation.alpha": alpha, "seed": 1})
        for i, (a, alpha) in enumerate([("relu", None), ("elu", 1.0), ("leaky_relu", None)])
    ]
    differences = compare.find_differences(runs)
    assert keys(differences.factors) == ["activation"]
    assert keys(differences.derived) == ["activation.alpha"]
    lines = compare.summary_lines(runs, differences)
    assert (
        "They differ in activation (relu, elu, leaky_relu). Everything else is the same." in lines
    )


def test_presets_are_one_factor_and_what_they_change_is_named():
    presets = {"selu_deep": ("selu", "lecun_normal"), "relu_deep": ("relu", "he_normal")}
    runs = [
        make_run(
            i,
            {"experiment": name, "activation": a, "init": init},
            {"optimizer.learning_rate": 0.01 * (i + 1)},
        )
        for i, (name, (a, init)) in enumerate(presets.items())
    ]
    differences = compare.find_differences(runs)
    assert keys(differences.factors) == ["experiment"]
    assert set(keys(differences.derived)) == {"activation", "init", "optimizer.learning_rate"}
    line = compare.summary_lines(runs, differences)[1]
    assert line.startswith("They differ in experiment (selu_deep, relu_deep); with them vary")
    assert "optimizer.learning_rate" in line


def test_a_swept_number_is_a_factor_in_numeric_order():
    runs = [
        make_run(i, {"optimizer": "sgd"}, {"optimizer.learning_rate": lr})
        for i, lr in enumerate([0.1, 0.001, 0.01])
    ]
    (factor,) = compare.find_differences(runs).factors
    assert (factor.key, factor.kind, factor.values) == (
        "optimizer.learning_rate",
        "param",
        ("0.001", "0.01", "0.1"),
    )
    assert factor.numeric


def test_the_factor_that_changed_accuracy_most_comes_first():
    runs = [
        make_run(
            i, {"init": init, "activation": a}, val_accuracy=0.5 + 0.3 * (a == "selu") + 0.01 * j
        )
        for i, ((j, init), a) in enumerate(
            itertools.product(
                enumerate(["glorot_uniform", "he_normal", "lecun_normal"]), ["sigmoid", "selu"]
            )
        )
    ]
    factors = compare.find_differences(runs).factors
    assert keys(factors) == ["init", "activation"]  # more values first: the matrix's rows
    assert keys(compare.by_effect(runs, factors)) == ["activation", "init"]
    styles = figures.RunStyles(runs, factors)
    assert styles.colour_factor.key == "activation" and styles.style_factor.key == "init"
    assert styles.of(runs[0]).color != styles.of(runs[1]).color  # sigmoid vs selu
    assert styles.of(runs[0]).color == styles.of(runs[2]).color  # both sigmoid


def test_a_failed_run_never_counts_and_is_named_with_its_reason():
    runs = [
        make_run(0, {"init": "a"}, val_accuracy=0.7),
        make_run(1, {"init": "b"}, val_accuracy=0.99, status="FAILED"),
    ]
    runs[1].tags["failure_reason"] = "non-finite loss"
    differences = compare.find_differences(runs)
    stats = groups.group_statistics(runs, differences.factors)
    lines = compare.summary_lines(runs, differences, claims.lines(stats))
    assert "Final val_accuracy, one run each (not a ranking): a 0.7000." in lines
    assert "FAILED: b: non-finite loss" in lines


def _legend_labels(runs, factors) -> list[str]:
    fig = Figure()
    ax = fig.subplots()
    styles = figures.RunStyles(runs, factors)
    drawn = {}
    for run in runs:
        style = styles.of(run)
        (drawn[style.label],) = ax.plot([0, 1], color=style.color, linestyle=style.linestyle)
    styles.legend(fig, drawn)
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_up_to_20_runs_the_legend_names_each_run_beyond_it_each_value():
    inits = ["glorot_uniform", "he_normal", "lecun_normal", "orthogonal", "random_normal"]
    activations = ["sigmoid", "tanh", "relu", "selu"]
    runs = [
        make_run(i, {"init": init, "activation": a}, val_accuracy=0.5 + 0.1 * inits.index(init))
        for i, (init, a) in enumerate(itertools.product(inits, activations))
    ]
    factors = compare.find_differences(runs).factors
    assert len(_legend_labels(runs, factors)) == 20
    assert "glorot_uniform · sigmoid" in _legend_labels(runs, factors)

    more = runs + [
        make_run(100 + i, {"init": init, "activation": "elu"}) for i, init in enumerate(inits)
    ]
    factors = compare.find_differences(more).factors
    assert _legend_labels(more, factors) == inits + activations + ["elu"]


def test_20_runs_of_100_layers_draw_profiles_and_matrices(tmp_path):
    """Figures at the sizes the issue names: 100-layer profiles, 20 runs in one plot."""
    rng = np.random.default_rng(0)
    runs = []
    for i in range(20):
        run = make_run(
            i, {"init": f"init{i // 4}", "activation": f"act{i % 4}"}, val_accuracy=0.5 + 0.01 * i
        )
        stats = {
            "grad/signal_std": rng.lognormal(-5, 2, (2, 100)).tolist(),
            "act/std": rng.lognormal(0, 1, (2, 100)).tolist(),
        }
        run.diagnostics = DiagnosticsRecord(
            layer_names=[f"hidden_{b:02d}" for b in range(1, 101)],
            activation="relu",
            probe_size=512,
            stat_names=tuple(stats),
            epochs=[0, 5],
            stats=stats,
            depth_ratio=[10.0 ** (i - 10), 0.5],
        )
        runs.append(run)
    factors = compare.find_differences(runs).factors
    styles = figures.RunStyles(runs, factors)
    path = figures.depth_profiles(runs, styles, tmp_path / "profiles.png")
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 10_000
    matrices = compare.matrices(runs, factors)
    assert matrices["depth_ratio_init"].shape == (5, 4)
    assert matrices["depth_ratio_init"].values[2, 3] == 10.0 ** (11 - 10)
    out = figures.matrix_figure(
        [matrices["depth_ratio_init"], matrices["depth_ratio_last"]], tmp_path / "matrix.png"
    )
    assert out.read_bytes().startswith(b"\x89PNG")
