"""Configurations over seeds and what the page may claim about them (runs built in
memory with known effects: no store needed)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from experiments.report import claims, compare, groups, html, statistics
from experiments.report.data import RunSummary
from experiments.report.text import number

SEEDS = (1, 2, 3, 4)


def make_runs(means: dict[tuple[str, ...], float], seeds=SEEDS, noise=0.005, tagged=True, rng=0):
    """Runs of (activation, init) configurations, one per seed, whose final accuracies are
    the configuration's mean plus seed noise."""
    rng = np.random.default_rng(rng)
    runs = []
    for (activation, init), mean in means.items():
        for seed in seeds:
            tags = {"seed": str(seed), "gradient_health": "healthy"}
            if tagged:
                tags["group_hash"] = f"{activation}-{init}"
            runs.append(
                RunSummary(
                    run_id=f"{activation}-{init}-{seed}",
                    name=f"{activation}-{init}",
                    status="FINISHED",
                    choices={"activation": activation, "init": init},
                    params={"training.seed": str(seed), "activation.name": activation},
                    metrics={
                        "val_accuracy": mean + rng.normal(0, noise),
                        "test_accuracy": mean - 0.01 + rng.normal(0, noise),
                    },
                    tags=tags,
                )
            )
    return runs


def analyse(runs):
    factors = compare.find_differences(runs).factors
    stats = groups.group_statistics(runs, factors)
    return stats, claims.lines(stats)


# relu and elu: the same accuracy (an A/A pair); sigmoid far below.
THREE = {("relu", "he"): 0.86, ("elu", "he"): 0.86, ("sigmoid", "he"): 0.70}


def test_the_seed_is_the_repeat_of_a_configuration_not_a_factor():
    runs = make_runs(THREE)
    differences = compare.find_differences(runs)
    assert [f.key for f in differences.factors] == ["activation"]
    stats, _ = analyse(runs)
    assert [g.label for g in stats.groups] == ["relu", "elu", "sigmoid"]
    assert all(g.seeds == ["1", "2", "3", "4"] for g in stats.groups)


def test_groups_rows_are_each_configurations_summary_of_each_metric():
    runs = make_runs(THREE)
    stats, _ = analyse(runs)
    rows = stats.group_rows()
    assert len(rows) == 3 * 2
    assert set(rows[0]) == set(groups.GROUP_COLUMNS)
    relu = [r.metrics["val_accuracy"] for r in runs if r.choices["activation"] == "relu"]
    (row,) = [r for r in rows if r["group"] == "relu" and r["metric"] == "val_accuracy"]
    expected = statistics.summarize(relu)
    assert row["n"] == 4 and row["mean"] == pytest.approx(np.mean(relu))
    assert (row["std"], row["ci_low"], row["ci_high"]) == (
        expected.std,
        expected.ci_low,
        expected.ci_high,
    )


def decisions(rng: int, words: bool = True):
    runs = make_runs(THREE, rng=rng)
    stats = groups.group_statistics(runs, compare.find_differences(runs).factors)
    lines = claims.lines(stats) if words else []
    return stats, lines, {(c.a, c.b, c.metric): c for c in stats.comparisons}


def test_a_strong_effect_is_significant_with_four_seeds_and_an_aa_pair_rarely():
    """40 sweeps, each relu, elu (the same accuracy: an A/A pair) and sigmoid (0.16 below)
    over four seeds with noise std 0.005."""
    strong = aa = 0
    for rng in range(40):
        _, _, by_pair = decisions(rng, words=False)
        strong += by_pair["relu", "sigmoid", "val_accuracy"].significant
        aa += by_pair["relu", "elu", "val_accuracy"].significant
    assert strong == 40
    assert aa <= 5  # about one in 20 at the 5% level; measured 2 of 40


def test_the_words_say_who_beats_whom_and_what_an_aa_pair_would_need():
    stats, lines, by_pair = decisions(1)  # a sweep whose A/A pair is not significant
    aa = by_pair["relu", "elu", "val_accuracy"]
    strong = by_pair["relu", "sigmoid", "val_accuracy"]
    assert strong.significant and strong.test.paired  # both ran seeds 1-4
    assert not aa.significant
    # Holm over the page's six comparisons.
    assert len(stats.comparisons) == 6
    p = [c.test.p_value for c in stats.comparisons]
    assert [c.p_adjusted for c in stats.comparisons] == pytest.approx(statistics.holm(p))

    text = "\n".join(lines)
    assert f"relu beats sigmoid on val_accuracy by {abs(strong.test.diff):.4f}" in text
    aa_line = next(line for line in lines if line.startswith("relu vs elu on val_accuracy"))
    assert "no detectable difference at n = 4 vs 4" in aa_line
    assert f"would need about {aa.seeds_needed} seeds per configuration" in aa_line
    significant = sum(c.significant for c in stats.comparisons)
    assert f"6 comparisons of configurations that differ in one factor, {significant} " in text


def test_every_comparison_is_said_as_its_row_decides():
    """Words and comparisons.csv agree: a "beats" line for each significant row, with its
    winner first, a "no detectable difference" line for each other, nothing else."""
    stats, lines, _ = decisions(0)  # its A/A pair came out significant: said as such
    rows = stats.comparison_rows()
    assert all(set(row) == set(groups.COMPARISON_COLUMNS) for row in rows)
    for row in rows:
        winner, loser = (row["a"], row["b"]) if row["diff"] > 0 else (row["b"], row["a"])
        beats = f"{winner} beats {loser} on {row['metric']} by {abs(row['diff']):.4f}"
        none = f"{row['a']} vs {row['b']} on {row['metric']}: no detectable difference"
        said = [line for line in lines if line.startswith((beats, none))]
        assert len(said) == 1, row
        assert said[0].startswith(beats if row["significant"] else none)
        assert f"Holm-adjusted {claims._p(row['p_adjusted'])}" in said[0]
        # A claim's interval is of winner minus loser: above 0 when significant.
        low, high = row["ci_low"], row["ci_high"]
        if row["significant"] and row["diff"] < 0:
            low, high = -high, -low
        assert f"95% CI {number(low)} to {number(high)}" in said[0]
        assert not row["significant"] or low > 0
    assert sum(" beats " in line for line in lines) == sum(r["significant"] for r in rows)


def test_one_seed_per_configuration_shows_numbers_without_ranking_words():
    stats, lines = analyse(make_runs(THREE, seeds=(42,)))
    assert stats.comparisons == []
    text = "\n".join(lines)
    assert "One seed per configuration: no comparison is possible" in text
    assert "Final val_accuracy, one run each (not a ranking): relu 0.8" in text
    for word in (" beats ", " > ", "Best", "best", "no detectable"):
        assert word not in text


def test_a_configuration_with_a_single_run_is_named_and_not_compared():
    runs = make_runs(THREE) + make_runs({("tanh", "he"): 0.8}, seeds=(1,))
    stats, lines = analyse(runs)
    assert all("tanh" not in (c.a, c.b) for c in stats.comparisons)
    assert "1 configuration has a single finished run and is not compared: tanh." in lines


def test_only_configurations_one_factor_apart_are_compared():
    means = {("relu", "he"): 0.86, ("relu", "glorot"): 0.84, ("elu", "he"): 0.85,
             ("elu", "glorot"): 0.83}  # fmt: skip
    stats, _ = analyse(make_runs(means))
    pairs = {(c.a, c.b, c.factor) for c in stats.comparisons if c.metric == "val_accuracy"}
    # Labels name init first (the order of the config groups), as the runs table does.
    assert pairs == {
        ("he · relu", "glorot · relu", "init"),
        ("he · elu", "glorot · elu", "init"),
        ("he · relu", "he · elu", "activation"),
        ("glorot · relu", "glorot · elu", "activation"),
    }


def test_runs_without_group_hash_group_by_their_params_without_the_seed():
    runs = make_runs(THREE, tagged=False)
    stats, _ = analyse(runs)
    assert [len(g.runs) for g in stats.groups] == [4, 4, 4]
    assert all(g.key.startswith("params:") for g in stats.groups)


def test_failed_runs_are_left_out_of_the_numbers_and_counted():
    runs = make_runs(THREE)
    runs[0].status = "FAILED"
    stats, _ = analyse(runs)
    relu = stats.groups[0]
    assert relu.failed == 1 and relu.summaries["val_accuracy"].n == 3


def study_runs(ratios, baseline, transfer):
    return [
        RunSummary(
            run_id=f"study-{seed}",
            name="transfer",
            status="FINISHED",
            choices={"experiment": "transfer"},
            params={"training.seed": str(seed)},
            metrics={
                "error_rate_ratio": ratio,
                "test_accuracy_baseline": b,
                "test_accuracy_transfer": t,
            },
            tags={"group_hash": "study", "transfer_study": "true", "seed": str(seed)},
        )
        for seed, ratio, b, t in zip((42, 43, 44), ratios, baseline, transfer, strict=True)
    ]


def test_the_transfer_studys_ratio_gets_an_interval_and_its_two_models_a_paired_test():
    """The numbers of docs/transfer.md, seeds 42-44."""
    ratios, baseline, transfer = (
        [1.29, 1.00, 2.41],
        [0.9910, 0.9845, 0.9650],
        [0.9930, 0.9845, 0.9855],
    )
    stats, lines = analyse(study_runs(ratios, baseline, transfer))
    (group,) = stats.groups
    ratio = group.summaries["error_rate_ratio"]
    assert ratio == statistics.summarize_ratio(ratios)
    (comparison,) = stats.comparisons
    assert (comparison.a, comparison.b, comparison.factor) == (
        "transfer · B_on_A",
        "transfer · baseline_B",
        "transfer",
    )
    assert comparison.test.paired
    assert comparison.test.p_value == pytest.approx(
        statistics.compare(transfer, baseline, [1, 2, 3], [1, 2, 3]).p_value
    )
    line = next(line for line in lines if line.startswith("Transfer study"))
    assert (
        f"geometric mean {ratio.mean:.4f}, 95% CI {ratio.ci_low:.4f} to {ratio.ci_high:.4f}" in line
    )
    assert "the interval includes 1, no detectable change at n = 3" in line
    assert not math.isnan(ratio.std)


def test_the_health_line_counts_verdicts_and_names_where_they_are_not_healthy():
    runs = make_runs(THREE)
    for run in runs:
        if run.choices["activation"] == "sigmoid" and run.tags["seed"] != "4":
            run.tags["gradient_health"] = "vanishing"
    stats, _ = analyse(runs)
    assert claims.health_line(stats) == (
        "Gradient health (tag gradient_health), runs: vanishing 3 (sigmoid: 3 of 4), healthy 9."
    )


def test_a_claim_names_the_winner_first_with_the_interval_of_its_lead():
    """The pair's order follows the sweep (sigmoid first here), the claim the result."""
    runs = make_runs({("sigmoid", "he"): 0.70, ("relu", "he"): 0.86})
    stats, lines = analyse(runs)
    row = next(c for c in stats.comparisons if c.metric == "val_accuracy")
    assert (row.a, row.b) == ("sigmoid", "relu") and row.test.diff < 0 and row.significant
    line = next(line for line in lines if line.startswith("relu beats sigmoid on val_accuracy"))
    assert f"95% CI {number(-row.test.ci_high)} to {number(-row.test.ci_low)}" in line


def test_a_seed_run_twice_is_compared_on_all_runs_and_the_page_says_so(tmp_path):
    """elu's seed 1 launched a second time (tracking.skip_finished=false): its comparisons
    are Welch's tests on all its runs, and the words, comparisons.csv and the page's
    tables say so; relu against sigmoid stays paired."""
    runs = make_runs(THREE)
    again = copy.deepcopy(next(r for r in runs if r.run_id == "elu-he-1"))
    again.run_id = "elu-he-1-again"
    again.metrics = {"val_accuracy": 0.851, "test_accuracy": 0.842}
    runs.append(again)
    stats, lines = analyse(runs)
    by_pair = {(c.a, c.b, c.metric): c for c in stats.comparisons}
    elu = [r.metrics["val_accuracy"] for r in runs if r.choices["activation"] == "elu"]
    relu = [r.metrics["val_accuracy"] for r in runs if r.choices["activation"] == "relu"]
    test = by_pair["relu", "elu", "val_accuracy"].test
    reference = scipy_stats.ttest_ind(relu, elu, equal_var=False)
    assert not test.paired and (test.n_a, test.n_b) == (4, 5)
    assert test.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert test.unpaired_because == "seed 1 ran 2 times in elu"
    assert by_pair["relu", "sigmoid", "val_accuracy"].test.paired

    rows = {(r["a"], r["b"], r["metric"]): r for r in stats.comparison_rows()}
    assert {k: rows["relu", "elu", "val_accuracy"][k] for k in ("test", "n_a", "n_b")} == {
        "test": "Welch's t-test",
        "n_a": 4,
        "n_b": 5,
    }
    assert rows["relu", "elu", "val_accuracy"]["unpaired_because"] == test.unpaired_because
    assert rows["relu", "sigmoid", "val_accuracy"]["test"] == "paired t-test"
    assert rows["relu", "sigmoid", "val_accuracy"]["unpaired_because"] == ""

    line = next(line for line in lines if "relu" in line and "elu on val_accuracy" in line)
    assert "Welch's t-test on all runs, not paired as seed 1 ran 2 times in elu, p = " in line
    assert "n = 4 vs 5" in line

    page = html.write_page(
        tmp_path / "report.html", "t", "s", lines, {}, {}, runs, [], [], stats=stats
    ).read_text()
    assert "<td>Welch&#x27;s t-test (seed 1 ran 2 times in elu)</td><td>4 vs 5</td>" in page
    assert "<td>1 ×2, 2, 3, 4</td>" in page  # the groups table's seeds of elu
