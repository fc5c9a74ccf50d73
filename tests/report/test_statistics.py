"""The report's statistics: the same numbers as scipy on the same inputs, and decisions
that hold over many draws (a strong effect found with four seeds, A/A pairs rarely)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from experiments.report import statistics

A = [0.851, 0.862, 0.848, 0.857, 0.866]
B = [0.832, 0.845, 0.828, 0.851]


def test_a_summary_is_the_mean_the_sample_std_and_the_t_interval():
    found = statistics.summarize(A)
    mean, sem = np.mean(A), scipy_stats.sem(A)
    low, high = scipy_stats.t.interval(0.95, len(A) - 1, loc=mean, scale=sem)
    assert found.n == 5
    assert found.mean == pytest.approx(mean, rel=1e-12)
    assert found.std == pytest.approx(np.std(A, ddof=1), rel=1e-12)
    assert (found.ci_low, found.ci_high) == pytest.approx((low, high), rel=1e-12)
    # The interval is the one scipy's one-sample t-test gives for the mean.
    ci = scipy_stats.ttest_1samp(A, 0.0).confidence_interval(0.95)
    assert (found.ci_low, found.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_one_value_has_a_mean_and_no_spread_or_interval():
    found = statistics.summarize([0.8])
    assert found.n == 1 and found.mean == 0.8
    assert math.isnan(found.std) and math.isnan(found.ci_low) and math.isnan(found.ci_high)
    assert statistics.summarize([]).n == 0


def test_a_ratio_is_summarized_on_a_log_scale():
    ratios = [1.29, 1.00, 2.41]  # the transfer study's three seeds (docs/transfer.md)
    found = statistics.summarize_ratio(ratios)
    logs = np.log(ratios)
    low, high = scipy_stats.t.interval(0.95, 2, loc=logs.mean(), scale=scipy_stats.sem(logs))
    assert found.mean == pytest.approx(scipy_stats.gmean(ratios), rel=1e-12)
    assert (found.ci_low, found.ci_high) == pytest.approx((math.exp(low), math.exp(high)))
    assert found.ci_low > 0 and found.ci_low < 1 < found.ci_high  # includes 1 at n = 3


def test_different_seeds_are_compared_with_welchs_t_test():
    found = statistics.compare(A, B, seeds_a=[1, 2, 3, 4, 5], seeds_b=[1, 2, 3, 4])
    reference = scipy_stats.ttest_ind(A, B, equal_var=False)
    ci = reference.confidence_interval(0.95)
    assert not found.paired and found.name == "Welch's t-test"
    assert found.diff == pytest.approx(np.mean(A) - np.mean(B), rel=1e-12)
    assert found.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert (found.ci_low, found.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert (found.n_a, found.n_b) == (5, 4)


def test_the_same_seeds_on_both_sides_are_paired_seed_by_seed():
    a = [0.80, 0.86, 0.83, 0.90]
    b = [0.78, 0.85, 0.80, 0.87]
    # b's runs listed in another order: pairing follows the seeds, not the order.
    found = statistics.compare(a, [b[2], b[0], b[3], b[1]], [1, 2, 3, 4], [3, 1, 4, 2])
    reference = scipy_stats.ttest_rel(a, b)
    ci = reference.confidence_interval(0.95)
    assert found.paired and found.name == "paired t-test"
    assert found.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert (found.ci_low, found.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    # The same numbers unpaired: the shared seed noise no longer cancels.
    assert statistics.compare(a, b).p_value > 10 * found.p_value


@pytest.mark.parametrize(
    ("a", "b", "seeds_a", "seeds_b", "because"),
    [
        # Paired, these two claimed p = 0.0034 with n_b = 3 and the difference outside its
        # own interval, and p = 0 with an interval of zero width.
        ([0.81, 0.9, 0.86], [0.7, 0.75, 0.85, 0.8], [1, 2, 3], [1, 1, 2, 3], "1 ran 2 times in b"),
        ([0.8, 0.9], [0.7, 0.75, 0.85], [1, 2], [1, 1, 2], "1 ran 2 times in b"),
        ([0.7, 0.8, 0.75], [0.81, 0.9], ["1", "1", "2"], ["1", "2"], "1 ran 2 times in a"),
    ],
)
def test_a_seed_run_twice_is_compared_unpaired_on_every_run(a, b, seeds_a, seeds_b, because):
    """The same seed twice on one side (a run launched again, two sweeps in one report)
    has no single partner: Welch's t-test on all the runs, and the test says why."""
    found = statistics.compare(a, b, seeds_a, seeds_b)
    reference = scipy_stats.ttest_ind(a, b, equal_var=False)
    ci = reference.confidence_interval(0.95)
    assert not found.paired and found.name == "Welch's t-test"
    assert (found.n_a, found.n_b) == (len(a), len(b))  # no run dropped
    assert found.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert (found.ci_low, found.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert found.ci_low < found.diff < found.ci_high
    assert found.unpaired_because == f"seed {because}"


@pytest.mark.parametrize(
    ("seeds_a", "seeds_b", "because"),
    [
        ([1, 2, 3], [1, 2, 3], ""),
        ([1, 2, 3], [3, 2, 1], ""),
        ([1, 2, 3], [1, 2, 4], "the seeds differ (only in a: 3; only in b: 4)"),
        ([1, 2, None], [1, 2, 3], "a run of a has no seed"),
        ([1, 2, 3], [1, 2, 2], "seed 2 ran 2 times in b"),
        (None, [1, 2, 3], "seeds not given"),
    ],
)
def test_runs_pair_only_when_both_sides_ran_the_same_seeds_once_each(seeds_a, seeds_b, because):
    assert statistics.unpaired_because(seeds_a, seeds_b) == because
    found = statistics.compare([0.80, 0.86, 0.83], [0.78, 0.85, 0.80], seeds_a, seeds_b)
    assert found.paired == (because == "") and found.unpaired_because == because


def test_a_side_with_one_value_cannot_be_compared():
    assert statistics.compare([0.8], B) is None
    same = statistics.compare([0.8, 0.8], [0.7, 0.7])
    assert (same.p_value, same.ci_low, same.ci_high) == (
        0.0,
        pytest.approx(0.1),
        pytest.approx(0.1),
    )


def test_holm_multiplies_the_kth_smallest_by_m_minus_k_plus_1_and_keeps_the_order():
    p = [0.01, 0.04, 0.03, 0.005]
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> 0.06 (monotone).
    assert statistics.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert statistics.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert statistics.holm([]).size == 0


@pytest.mark.parametrize("effect, n", [(0.5, 64), (0.8, 26), (1.0, 17)])
def test_seeds_needed_match_cohens_table(effect, n):
    """Cohen (1988), Table 2.4.1: n per group for 80% power, two-sided alpha 0.05."""
    assert statistics.seeds_needed(effect) == n
    assert statistics.power(effect, n) >= 0.8 > statistics.power(effect, n - 1)
    assert statistics.detectable_effect(n) <= effect < statistics.detectable_effect(n - 1)


def test_no_observed_difference_needs_no_finite_number_of_seeds():
    assert statistics.seeds_needed(0.0) is None
    assert statistics.seeds_needed(1e-4) is None  # beyond MAX_SEEDS
    assert statistics.seeds_needed(math.inf) == 2


def test_a_strong_effect_is_found_with_four_seeds_and_an_aa_pair_rarely():
    """400 draws of four seeds a side, seed noise std 0.01: a difference of 0.04 (4 std)
    is significant in nearly every draw; with no difference, about 5% of draws are
    (the test's level): the t quantiles, not normal ones, keep it there at n = 4."""
    rng = np.random.default_rng(0)
    strong = aa = 0
    draws = 400
    for _ in range(draws):
        base = rng.normal(0.85, 0.01, 4)
        strong += statistics.compare(rng.normal(0.89, 0.01, 4), base).p_value < 0.05
        aa += statistics.compare(rng.normal(0.85, 0.01, 4), base).p_value < 0.05
    assert strong / draws > 0.95
    assert 0.015 < aa / draws < 0.085  # 3 binomial standard deviations around 5%
