"""Configurations: runs that differ only by their seed, with their statistics and the
comparisons between configurations that differ in one factor.

A configuration is a `group_hash` tag (the config digest without `training.seed`; a
transfer study's nested run adds its phase); a run recorded without one falls back on a
digest of its choices and params without the seed and the keys that do not change what
it computes. The comparisons of a page form one family for Holm's adjustment.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations

import numpy as np

from experiments.core import names
from experiments.core.digest import SEED_KEY, is_ignored
from experiments.diagnostics import verdict
from experiments.report import statistics
from experiments.report.compare import Factor, run_label
from experiments.report.data import RunSummary

# A transfer study's own run: the ratio on a log scale, both accuracies paired by seed.
RATIO = "error_rate_ratio"
BASELINE, TRANSFER = "test_accuracy_baseline", "test_accuracy_transfer"
STUDY_METRICS = (RATIO, BASELINE, TRANSFER)


def seed_of(run: RunSummary) -> str | None:
    return run.params.get(SEED_KEY) or run.tags.get(names.SEED_TAG)


def group_key(run: RunSummary) -> str:
    if run.tags.get(names.GROUP_TAG):
        return run.tags[names.GROUP_TAG]
    kept = {k: v for k, v in run.params.items() if not is_ignored(k, also=(SEED_KEY,))}
    text = json.dumps([run.choices, kept, run.tags.get(names.STUDY_PHASE_TAG, "")], sort_keys=True)
    return "params:" + hashlib.sha256(text.encode()).hexdigest()[:20]


def verdict_of(run: RunSummary) -> verdict.Verdict:
    """The run's `gradient_health` tags; a run recorded before they existed is judged
    here, by the same function, from its diagnostics and its failure tags."""
    tags = run.tags
    if tags.get(names.HEALTH_TAG):
        epoch = tags.get(names.HEALTH_EPOCH_TAG, "")
        return verdict.Verdict(
            tags[names.HEALTH_TAG],
            tags.get(names.HEALTH_REASON_TAG, ""),
            tags.get(names.HEALTH_LAYER_TAG, ""),
            int(epoch) if epoch.isdigit() else None,
        )
    failed_epoch = tags.get(names.FAILED_EPOCH_TAG, "")
    return verdict.judge(
        run.diagnostics,
        int(failed_epoch) if failed_epoch.isdigit() else None,
        run.failure_reason,
    )


def health_of(run: RunSummary) -> str:
    return verdict_of(run).health


@dataclass
class Group:
    key: str
    label: str
    runs: list[RunSummary]
    summaries: dict[str, statistics.Summary] = field(default_factory=dict)

    @property
    def phase(self) -> str:
        return self.runs[0].tags.get(names.STUDY_PHASE_TAG, "")

    @property
    def is_study(self) -> bool:
        return self.runs[0].tags.get(names.TRANSFER_STUDY_TAG) == "true"

    @property
    def failed(self) -> int:
        return sum(run.failed for run in self.runs)

    @property
    def seeds(self) -> list[str]:
        return list(self.seed_counts())

    def seed_counts(self) -> dict[str, int]:
        """Runs per seed, in seed order: more than one where a seed ran again."""
        counts = Counter(s for run in self.runs if (s := seed_of(run)) is not None)
        return {s: counts[s] for s in sorted(counts, key=_seed_order)}

    def values(self, metric: str) -> tuple[list[float], list[str | None]]:
        """The metric's final value in each run that finished with a finite one (ratios
        also positive), and those runs' seeds."""
        values, seeds = [], []
        for run in self.runs:
            value = run.metrics.get(metric)
            if run.failed or value is None or not math.isfinite(value):
                continue
            if metric == RATIO and value <= 0:
                continue
            values.append(value)
            seeds.append(seed_of(run))
        return values, seeds

    @property
    def repeated(self) -> bool:
        """Whether a metric has two finished values here: a spread, an interval."""
        return any(s.n >= 2 for s in self.summaries.values())

    def health_counts(self) -> dict[str, int]:
        counts = Counter(health_of(run) for run in self.runs)
        return dict(sorted(counts.items(), key=lambda item: health_order(item[0])))

    def level(self, factor: Factor) -> str:
        return factor.value(self.runs[0])


def _seed_order(seed: str):
    return (0, int(seed), "") if seed.lstrip("-").isdigit() else (1, 0, seed)


def health_order(health: str) -> int:
    return verdict.SEVERITY.index(health) if health in verdict.SEVERITY else len(verdict.SEVERITY)


GROUP_COLUMNS = ("group", "n", "metric", "mean", "std", "ci_low", "ci_high")
# Columns added later go last, so a reader of an earlier comparisons.csv by position
# still finds its columns where they were.
COMPARISON_COLUMNS = (
    "a", "b", "factor", "metric", "diff", "ci_low", "ci_high", "p_value", "p_adjusted",
    "significant", "test", "n_a", "n_b", "unpaired_because",
)  # fmt: skip


@dataclass
class Comparison:
    """Configuration a against b (their labels) on one metric, differing in one factor."""

    a: str
    b: str
    factor: str
    metric: str
    test: statistics.Test
    p_adjusted: float = math.nan

    @property
    def significant(self) -> bool:
        return self.p_adjusted < statistics.ALPHA

    @cached_property
    def seeds_needed(self) -> int | None:
        return statistics.seeds_needed(self.test.effect, self.test.paired)


@dataclass
class Statistics:
    groups: list[Group]
    comparisons: list[Comparison]

    @property
    def repeated(self) -> bool:
        """Whether some configuration has two finished values of a metric: without, no
        comparison is possible."""
        return any(g.repeated for g in self.groups)

    def group_rows(self) -> list[dict[str, object]]:
        """groups.csv: one row per configuration and metric."""
        return [
            _row(GROUP_COLUMNS, g.label, s.n, metric, s.mean, s.std, s.ci_low, s.ci_high)
            for g in self.groups
            for metric, s in g.summaries.items()
        ]

    def comparison_rows(self) -> list[dict[str, object]]:
        """comparisons.csv: one row per comparison."""
        return [
            _row(
                COMPARISON_COLUMNS,
                c.a,
                c.b,
                c.factor,
                c.metric,
                c.test.diff,
                c.test.ci_low,
                c.test.ci_high,
                c.test.p_value,
                c.p_adjusted,
                c.significant,
                c.test.name,
                c.test.n_a,
                c.test.n_b,
                c.test.unpaired_because,
            )
            for c in self.comparisons
        ]


def _row(columns: tuple[str, ...], *values: object) -> dict[str, object]:
    return dict(zip(columns, values, strict=True))


def find_groups(runs: list[RunSummary], factors: list[Factor]) -> list[Group]:
    """Configurations in the order their first runs appear; labels by the varying
    factors, made unique with the key's start where two would read the same."""
    by_key: dict[str, list[RunSummary]] = {}
    for run in runs:
        by_key.setdefault(group_key(run), []).append(run)
    groups = [Group(key, run_label(found[0], factors), found) for key, found in by_key.items()]
    labels = [g.label for g in groups]
    for g in groups:
        if labels.count(g.label) > 1:
            g.label += f" [{g.key.split(':')[-1][:6]}]"
    for g in groups:
        # A configuration whose runs all failed has its final metrics at n = 0.
        for metric in STUDY_METRICS if g.is_study else names.FINAL_METRICS:
            values, _ = g.values(metric)
            if values or metric in names.FINAL_METRICS:
                summarize = statistics.summarize_ratio if metric == RATIO else statistics.summarize
                g.summaries[metric] = summarize(values)
    return groups


def _one_factor_apart(a: Group, b: Group, factors: list[Factor]) -> Factor | None:
    if a.phase != b.phase or a.is_study or b.is_study:
        return None  # a task-B phase against a task-A run compares nothing
    differing = [f for f in factors if a.level(f) != b.level(f)]
    return differing[0] if len(differing) == 1 else None


def compare_groups(groups: list[Group], factors: list[Factor]) -> list[Comparison]:
    """Every pair of configurations that differ in one factor, on each final metric both
    have two values of; each study's B on A against its baseline, paired by seed where
    each seed ran once (`statistics.compare`). The pair's order follows the factor's
    values; p-values are adjusted together (Holm)."""
    found: list[Comparison] = []
    for a, b in combinations(groups, 2):
        factor = _one_factor_apart(a, b, factors)
        if factor is None:
            continue
        if factor.values.index(a.level(factor)) > factor.values.index(b.level(factor)):
            a, b = b, a
        for metric in names.FINAL_METRICS:
            (values_a, seeds_a), (values_b, seeds_b) = a.values(metric), b.values(metric)
            test = statistics.compare(values_a, values_b, seeds_a, seeds_b, (a.label, b.label))
            if test is not None:
                found.append(Comparison(a.label, b.label, factor.key, metric, test))
    for g in groups:
        if not g.is_study:
            continue
        transfer, seeds = g.values(TRANSFER)
        baseline, baseline_seeds = g.values(BASELINE)
        labels = (f"{g.label} · B_on_A", f"{g.label} · baseline_B")
        test = statistics.compare(transfer, baseline, seeds, baseline_seeds, labels)
        if test is not None:
            found.append(Comparison(*labels, "transfer", "test_accuracy", test))
    adjusted = statistics.holm([c.test.p_value for c in found])
    for comparison, p in zip(found, adjusted, strict=True):
        comparison.p_adjusted = float(p)
    return found


def group_statistics(runs: list[RunSummary], factors: list[Factor]) -> Statistics:
    groups = find_groups(runs, factors)
    return Statistics(groups, compare_groups(groups, factors))


def mean_curve(
    group: Group, key: str = "val_accuracy"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, low, high) of a curve over the group's runs, per step, from the runs
    that have a finite value there; the band is the 95% t interval (NaN below n = 2)."""
    by_step: dict[int, list[float]] = {}
    for run in group.runs:
        for step, value in run.curves.get(key, []):
            if math.isfinite(value):
                by_step.setdefault(step, []).append(value)
    steps = np.array(sorted(by_step))
    summaries = [statistics.summarize(by_step[s]) for s in steps]
    return (
        steps,
        np.array([s.mean for s in summaries]),
        np.array([s.ci_low for s in summaries]),
        np.array([s.ci_high for s in summaries]),
    )
