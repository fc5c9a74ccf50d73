"""Uncertainty over seeds, on scipy: intervals, two-sample tests, Holm's adjustment, power.

Intervals are Student t intervals of the mean (`scipy.stats.t.interval`), not bootstrap
ones: a configuration has a handful of seeds (3 to 10), where a percentile bootstrap
draws from too few distinct resamples and its intervals come out too narrow (with 3
seeds there are 10 distinct resamples), while the t interval is exact for normal noise
and widens as it should when n is small. Seed-to-seed noise of a final accuracy is a sum
of many small effects, close to normal. rliable's stratified bootstrap is built for many
tasks times runs, which a sweep of one data set does not have.

Ratios (the transfer study's error-rate ratio) are summarized on a log scale: the mean
is geometric, the std a factor, and the interval, exp of the t interval of the logs, is
never below zero.

A difference of means is tested with Welch's t-test (`scipy.stats.ttest_ind`,
equal_var=False) on every run of both sides, or with the paired t-test
(`scipy.stats.ttest_rel`) when both sides ran the same seeds once each: then a seed's
shared data order and probe batch cancel out. A seed run twice on one side (the same run
launched again, `tracking.skip_finished=false`, two sweeps in one report) has no single
partner: pairing would drop a run or pair one run twice, and the paired test would claim
a certainty the runs do not hold, so those runs are compared unpaired, and the test says
why. Either test gives the 95% interval of the difference (`confidence_interval`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 10_000


@dataclass(frozen=True)
class Summary:
    """n values: mean, sample std (ddof=1) and the 95% interval of the mean; std and
    interval are NaN for fewer than two values."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def summarize(values: Sequence[float]) -> Summary:
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    if std == 0:
        return Summary(n, mean, 0.0, mean, mean)
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Summary(n, mean, std, float(low), float(high))


def summarize_ratio(values: Sequence[float]) -> Summary:
    """Positive ratios on a log scale: geometric mean, geometric std (a factor) and exp of
    the t interval of the logs."""
    logs = summarize(np.log(np.asarray(values, dtype=float)))
    return Summary(
        logs.n,
        math.exp(logs.mean),
        math.exp(logs.std),
        math.exp(logs.ci_low),
        math.exp(logs.ci_high),
    )


@dataclass(frozen=True)
class Test:
    """mean(a) - mean(b), its 95% interval and two-sided p-value; `effect` is the
    standardized difference (Cohen's d with the two stds averaged, or d_z of the paired
    differences) that the power estimate uses. n_a and n_b count the runs the test used:
    every run given. `unpaired_because` says why an unpaired test was used ("" when
    paired)."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    paired: bool
    n_a: int
    n_b: int
    effect: float
    unpaired_because: str = ""

    @property
    def name(self) -> str:
        return "paired t-test" if self.paired else "Welch's t-test"


def unpaired_because(
    seeds_a: Sequence | None, seeds_b: Sequence | None, names: tuple[str, str] = ("a", "b")
) -> str:
    """Why the runs of a and b cannot be paired seed by seed, in words naming the sides by
    `names`; "" when they can: both sides ran the same seeds, each once."""
    if seeds_a is None or seeds_b is None:
        return "seeds not given"
    reasons = []
    for seeds, name in zip((seeds_a, seeds_b), names, strict=True):
        if None in seeds:
            reasons.append(f"a run of {name} has no seed")
        counts = Counter(s for s in seeds if s is not None)
        reasons += [f"seed {s} ran {k} times in {name}" for s, k in counts.items() if k > 1]
    if reasons:
        return ", ".join(reasons)
    only = []
    for mine, other, name in ((seeds_a, seeds_b, names[0]), (seeds_b, seeds_a, names[1])):
        extra = [str(s) for s in mine if s not in set(other)]
        if extra:
            only.append(f"only in {name}: {', '.join(extra)}")
    return f"the seeds differ ({'; '.join(only)})" if only else ""


def compare(
    a: Sequence[float],
    b: Sequence[float],
    seeds_a: Sequence | None = None,
    seeds_b: Sequence | None = None,
    names: tuple[str, str] = ("a", "b"),
) -> Test | None:
    """The paired t-test of a against b when both ran the same seeds once each, else
    Welch's t-test on all their runs; `names` name the sides in `unpaired_because`. None
    when a side has fewer than two values. With no spread on either side, any difference
    is certain (p 0) and none is no evidence (p 1)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        return None
    reason = unpaired_because(seeds_a, seeds_b, names)
    paired = not reason
    diff = float(x.mean() - y.mean())
    if paired:
        order = {seed: i for i, seed in enumerate(seeds_b)}
        y = y[[order[seed] for seed in seeds_a]]
        spread = float(np.std(x - y, ddof=1))
    else:
        spread = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)
    if spread == 0:
        p = 0.0 if diff != 0 else 1.0
        effect = math.inf if diff else 0.0
        return Test(diff, diff, diff, p, paired, len(x), len(y), effect, reason)
    result = stats.ttest_rel(x, y) if paired else stats.ttest_ind(x, y, equal_var=False)
    ci = result.confidence_interval(CONFIDENCE)
    return Test(
        diff,
        float(ci.low),
        float(ci.high),
        float(result.pvalue),
        paired,
        len(x),
        len(y),
        abs(diff) / spread,
        reason,
    )


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (scipy offers only the
    false-discovery-rate adjustments, `false_discovery_control`): the k-th smallest is
    multiplied by (m - k + 1), then made non-decreasing, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def power(effect: float, n: int, paired: bool = False, alpha: float = ALPHA) -> float:
    """Chance that a two-sided t-test at `alpha` finds a standardized difference
    `effect` with n seeds per side (noncentral t; equal n and spread on both sides)."""
    df = n - 1 if paired else 2 * n - 2
    noncentrality = effect * math.sqrt(n if paired else n / 2)
    critical = stats.t.ppf(1 - alpha / 2, df)
    found = float(
        stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)
    )
    if math.isnan(found):  # scipy's noncentral t gives up far in the tail, where power is 1
        return 1.0 if noncentrality > critical else 0.0
    return found


def seeds_needed(effect: float, paired: bool = False, target: float = POWER) -> int | None:
    """The fewest seeds per configuration that find a difference of this standardized
    size with the target power at alpha 0.05; None for no difference, or beyond
    MAX_SEEDS."""
    if not effect > 0:
        return None
    if math.isinf(effect):
        return 2
    high = 2  # power grows with n: double until it reaches the target, then bisect
    while power(effect, high, paired) < target:
        if high >= MAX_SEEDS:
            return None
        high *= 2
    low = max(2, high // 2)
    while low < high:
        middle = (low + high) // 2
        if power(effect, middle, paired) >= target:
            high = middle
        else:
            low = middle + 1
    return low


def detectable_effect(n: int, paired: bool = False, target: float = POWER) -> float:
    """The standardized difference that n seeds per configuration find with the target
    power (at alpha 0.05): multiply by the seed-to-seed std to get it in the metric's
    units."""
    return float(optimize.brentq(lambda d: power(d, n, paired) - target, 1e-6, 1e3))
