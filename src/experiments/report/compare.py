"""What differs between runs, and what it did: factors, rankings, two-factor matrices.

A factor is a config group whose choice varies across the runs (a `choice.<group>` tag),
or a varying param that is not already implied by the factors found before it: in a
sweep over activation, `activation.alpha` varies too, but only because the activation
does, so it is named as following from it rather than as a factor of its own.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from experiments.core import names
from experiments.core.digest import SEED_KEY, is_ignored
from experiments.diagnostics.verdict import THRESHOLDS
from experiments.report.data import RunSummary

ABSENT = "—"
# Besides the keys that change nothing (core.digest): the params Keras derives from the
# optimizer choice, and the seed, which is not a factor but the repeats of a
# configuration (report.groups).
NOT_FACTORS = ("optimizer_config", SEED_KEY)
GROUP_ORDER = (
    "experiment",
    "data",
    "model",
    "init",
    "activation",
    "normalization",
    "clipping",
    "optimizer",
    "schedule",
    "training",
    "transfer",
)


@dataclass(frozen=True)
class Factor:
    key: str
    kind: str  # "choice" (a config group) or "param"
    values: tuple[str, ...]

    def value(self, run: RunSummary) -> str:
        source = run.choices if self.kind == "choice" else run.params
        return source.get(self.key, ABSENT)

    def label(self, value: str) -> str:
        """A value as a reader can place it: `none` alone says nothing, `clipping=none` does."""
        if self.kind == "param":
            group, _, short = self.key.rpartition(".")
            return f"{group if short == 'name' and group else short}={value}"
        return f"{self.key}={value}" if value in ("none", ABSENT) else value

    @property
    def numeric(self) -> bool:
        return all(_as_float(v) is not None for v in self.values)


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _ordered_values(runs: list[RunSummary], get: Callable[[RunSummary], str]) -> tuple[str, ...]:
    """Numbers ascending; names in the order the runs met them (a sweep's own order)."""
    seen = list(dict.fromkeys(get(run) for run in runs))
    numbers = [_as_float(v) for v in seen]
    if all(n is not None for n in numbers):
        return tuple(v for _, v in sorted(zip(numbers, seen, strict=True)))
    return tuple(seen)


def _candidates(runs: list[RunSummary]) -> list[Factor]:
    groups = {g for run in runs for g in run.choices}
    ordered_groups = [g for g in GROUP_ORDER if g in groups] + sorted(groups - set(GROUP_ORDER))
    found = []
    for kind, keys in (
        ("choice", ordered_groups),
        ("param", sorted({k for run in runs for k in run.params})),
    ):
        for key in keys:
            if kind == "param" and is_ignored(key, also=NOT_FACTORS):
                continue
            probe = Factor(key, kind, ())
            values = _ordered_values(runs, probe.value)
            if len(values) > 1:
                found.append(Factor(key, kind, values))
    # Groups before params (a param unique to each run would otherwise explain every
    # group); within each, more values first, so a 3 x 2 sweep's rows are the 3.
    return sorted(found, key=lambda f: (f.kind != "choice", -len(f.values)))


def _follows_from(runs: list[RunSummary], kept: list[Factor], candidate: Factor) -> bool:
    """True when the kept factors' values fix the candidate's value in every run."""
    seen: dict[tuple[str, ...], str] = {}
    for run in runs:
        key = tuple(f.value(run) for f in kept)
        if seen.setdefault(key, candidate.value(run)) != candidate.value(run):
            return False
    return True


@dataclass
class Differences:
    factors: list[Factor]
    derived: list[Factor]  # vary, but only with the factors


def find_differences(runs: list[RunSummary]) -> Differences:
    factors: list[Factor] = []
    derived: list[Factor] = []
    for candidate in _candidates(runs):
        if factors and _follows_from(runs, factors, candidate):
            derived.append(candidate)
        else:
            factors.append(candidate)
    return Differences(factors, derived)


def run_label(run: RunSummary, factors: list[Factor]) -> str:
    """The run's values of the varying factors; a factor the run lacks says nothing and
    is left out. A transfer study's nested run leads with its phase (pretrain_A, ...)."""
    parts = [f.label(v) for f in factors if (v := f.value(run)) != ABSENT]
    if run.tags.get(names.STUDY_PHASE_TAG):
        parts.insert(0, run.name)
    return " · ".join(parts) or run.name


def val_accuracy(run: RunSummary) -> float | None:
    """Final validation accuracy of a run that finished; a failed run has none to compare."""
    value = run.metrics.get("val_accuracy")
    if run.failed or value is None or not math.isfinite(value):
        return None
    return value


def finite_positive(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value > 0 else None


@dataclass
class Matrix:
    """A metric over two factors: rows are the first factor's values, columns the second's.
    A cell holds the mean over its runs (geometric for ratios), NaN when none has a value."""

    title: str
    rows: Factor
    cols: Factor
    values: np.ndarray
    runs: np.ndarray
    failed: np.ndarray
    log_scale: bool
    averaged_over: list[Factor]

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape


def two_factor_matrix(
    runs: list[RunSummary],
    factors: list[Factor],
    title: str,
    metric: Callable[[RunSummary], float | None],
    log_scale: bool = False,
) -> Matrix:
    rows, cols = factors[0], factors[1]
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    counts = np.zeros((len(rows.values), len(cols.values)), dtype=int)
    failed = np.zeros_like(counts)
    for run in runs:
        i, j = rows.values.index(rows.value(run)), cols.values.index(cols.value(run))
        counts[i, j] += 1
        failed[i, j] += run.failed
        value = metric(run)
        if value is not None:
            cells[i, j].append(math.log10(value) if log_scale else value)
    values = np.full(counts.shape, np.nan)
    for (i, j), found in cells.items():
        mean = float(np.mean(found))
        values[i, j] = 10**mean if log_scale else mean
    return Matrix(title, rows, cols, values, counts, failed, log_scale, factors[2:])


def matrices(runs: list[RunSummary], factors: list[Factor]) -> dict[str, Matrix]:
    """The first two factors as a grid: final val_accuracy, and depth_ratio at the first
    and the last probe step when the runs carry diagnostics."""
    if len(factors) < 2:
        return {}
    found = {
        "val_accuracy": two_factor_matrix(runs, factors, "final val_accuracy", val_accuracy),
    }
    if any(run.diagnostics for run in runs):
        for which, words in (("init", "at initialization"), ("last", "at the last probe step")):
            found[f"depth_ratio_{which}"] = two_factor_matrix(
                runs,
                factors,
                f"depth_ratio {words}",
                lambda run, w=which: finite_positive(run.depth_ratio(w)),
                log_scale=True,
            )
    return found


def summary_lines(
    runs: list[RunSummary], differences: Differences, claims: list[str] | None = None
) -> list[str]:
    """The page's first lines: what differs, then the claims about configurations (see
    report.claims: what won, as far as the seeds tell), what the gradients did, what
    failed."""
    factors = differences.factors
    failed = [run for run in runs if run.failed]
    lines = [f"{len(runs)} runs: {len(runs) - len(failed)} finished, {len(failed)} did not."]

    if factors:
        named = "; ".join(f"{f.key} ({', '.join(f.values)})" for f in factors)
        line = f"They differ in {named}"
        # `activation.alpha` varying with the activation goes without saying; what a
        # preset (`experiment`) changes does not.
        groups = tuple(f"{f.key}." for f in factors if f.kind == "choice")
        derived = [f.key for f in differences.derived if not f.key.startswith(groups)]
        if derived:
            line += f"; with them vary {', '.join(derived)}"
        lines.append(line + ". Everything else is the same.")
    else:
        lines.append("They share every config choice and param (repeats of one setting).")

    lines.extend(claims or [])
    lines.extend(_gradient_lines(runs, factors))
    for run in failed[:5]:
        reason = run.failure_reason or "no reason recorded"
        lines.append(f"{run.status}: {run_label(run, factors)}: {reason}")
    if len(failed) > 5:
        lines.append(f"... and {len(failed) - 5} more runs that did not finish (see the table).")
    return [line for line in lines if line]


def mean_val_accuracy(runs: list[RunSummary], factor: Factor) -> list[tuple[float, str]]:
    """(mean final val_accuracy, value) for each of the factor's values, best first."""
    by_value: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if (value := val_accuracy(run)) is not None:
            by_value[factor.value(run)].append(value)
    return sorted(((float(np.mean(v)), k) for k, v in by_value.items()), reverse=True)


def by_effect(runs: list[RunSummary], factors: list[Factor]) -> list[Factor]:
    """Factors ordered by how far apart their values' mean val_accuracy lie: the first
    one is the remedy that mattered most in these runs."""

    def spread(factor: Factor) -> float:
        means = [m for m, _ in mean_val_accuracy(runs, factor)]
        return max(means) - min(means) if len(means) > 1 else 0.0

    return sorted(factors, key=spread, reverse=True)


def _gradient_lines(runs: list[RunSummary], factors: list[Factor]) -> list[str]:
    at_init = [
        (abs(math.log10(ratio)), ratio, run)
        for run in runs
        if (ratio := finite_positive(run.depth_ratio("init"))) is not None
    ]
    if not at_init:
        return []
    at_init.sort(key=lambda item: item[0])
    _, ratio, run = at_init[0]
    line = (
        "depth_ratio (gradient signal std of the first hidden block over the last's) at "
        f"initialization: closest to 1 in {run_label(run, factors)} ({ratio:.3g})"
    )
    if len(at_init) > 1:
        _, ratio, run = at_init[-1]
        trend = "shrinks towards the input" if ratio < 1 else "grows towards the input"
        line += f", farthest in {run_label(run, factors)} ({ratio:.3g}: the gradient {trend})"
    t = THRESHOLDS
    return [
        line + ".",
        f"Below {t.vanishing_ratio:g}, the gradient has vanished on its way back to the first "
        f"layers; above {t.exploding_ratio:g}, it has exploded (the gradient_health verdict).",
    ]
