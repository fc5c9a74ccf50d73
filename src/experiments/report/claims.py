"""The page's claims about configurations, in words that follow the statistics: "A beats
B" only when the difference is significant after Holm's adjustment; otherwise no
detectable difference at that n, with the seeds a difference of that size would need.
With one seed per configuration, numbers without ranking words. Every number here is a
number of groups.csv or comparisons.csv.
"""

from __future__ import annotations

from experiments.core import names
from experiments.diagnostics.verdict import HEALTHY, UNKNOWN
from experiments.report import statistics
from experiments.report.groups import (
    BASELINE,
    RATIO,
    TRANSFER,
    Comparison,
    Group,
    Statistics,
    health_order,
)
from experiments.report.text import number

# Lines per metric before the rest is counted (comparisons.csv has them all).
SHOWN_COMPARISONS = {"val_accuracy": 10, "test_accuracy": 5}
SHOWN_SINGLE = 12


def _interval(low: float, high: float) -> str:
    return f"95% CI {number(low)} to {number(high)}"


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def comparison_line(c: Comparison) -> str:
    t = c.test
    # An unpaired test where seeds were known says why: a seed run twice would otherwise
    # pass unnoticed, and the reader could not tell which runs the numbers rest on.
    unpaired = f" on all runs, not paired as {t.unpaired_because}" if t.unpaired_because else ""
    tested = f"{t.name}{unpaired}, p = {_p(t.p_value)}, Holm-adjusted {_p(c.p_adjusted)}"
    if c.significant:
        # Winner first, and the interval of winner minus loser.
        winner, loser = (c.a, c.b) if t.diff > 0 else (c.b, c.a)
        low, high = (t.ci_low, t.ci_high) if t.diff > 0 else (-t.ci_high, -t.ci_low)
        return (
            f"{winner} beats {loser} on {c.metric} by {number(abs(t.diff))} "
            f"({_interval(low, high)}; {tested}; n = {t.n_a} vs {t.n_b})."
        )
    numbers = f"{_interval(t.ci_low, t.ci_high)}; {tested}"
    line = (
        f"{c.a} vs {c.b} on {c.metric}: no detectable difference at n = {t.n_a} vs {t.n_b} "
        f"(difference {number(t.diff)}, {numbers})"
    )
    needed = c.seeds_needed
    if needed is not None:
        line += (
            f"; a difference of this size would need about {needed} seeds per configuration "
            f"({statistics.POWER:.0%} power, alpha {statistics.ALPHA:g})"
        )
    elif t.diff == 0:
        line += "; the means are equal"
    else:
        line += f"; more than {statistics.MAX_SEEDS} seeds would be needed to see it"
    return line + "."


def _seed_counts(groups: list[Group]) -> str:
    counts = sorted({len(g.runs) for g in groups})
    runs = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    return f"{runs} run{'s' if counts[-1] > 1 else ''} each"


def lines(stats: Statistics) -> list[str]:
    groups = [g for g in stats.groups if g.summaries]
    if not groups:
        return []
    found = [
        f"{len(stats.groups)} configuration{'s' if len(stats.groups) > 1 else ''} (runs that "
        f"differ only by their seed, tag group_hash), {_seed_counts(stats.groups)}."
    ]
    if not stats.repeated:
        found += _single_seed_lines(groups)
    else:
        found += _comparison_lines(stats)
    found += _study_lines(groups)
    return found


def _single_seed_lines(groups: list[Group]) -> list[str]:
    found = []
    if len(groups) > 1:
        found.append(
            "One seed per configuration: no comparison is possible, since a difference "
            "between single runs cannot be told from seed noise. Run several seeds "
            "(training.seed=range(N), or make study SEEDS=N) to compare."
        )
    for metric in names.FINAL_METRICS:
        shown = [g for g in groups if metric in g.summaries and g.summaries[metric].n]
        if not shown:
            continue
        values = "; ".join(
            f"{g.label} {number(g.summaries[metric].mean)}" for g in shown[:SHOWN_SINGLE]
        )
        if len(shown) > SHOWN_SINGLE:
            values += f"; ... ({len(shown) - SHOWN_SINGLE} more in groups.csv)"
        found.append(f"Final {metric}, one run each (not a ranking): {values}.")
    return found


def _comparison_lines(stats: Statistics) -> list[str]:
    found = []
    single = [g.label for g in stats.groups if g.summaries and not g.repeated]
    if single:
        found.append(
            f"{len(single)} configuration{'s have' if len(single) > 1 else ' has'} a single "
            f"finished run and {'are' if len(single) > 1 else 'is'} not compared: "
            + ", ".join(single[:SHOWN_SINGLE])
            + (" ..." if len(single) > SHOWN_SINGLE else "")
            + "."
        )
    if not stats.comparisons:
        found.append(
            "No two configurations with several seeds differ in exactly one factor: no "
            "comparison is made."
        )
        return found
    significant = sum(c.significant for c in stats.comparisons)
    found.append(
        f"{len(stats.comparisons)} comparison{'s' if len(stats.comparisons) > 1 else ''} of "
        f"configurations that differ in one factor, {significant} significant (p-values "
        f"adjusted for all {len(stats.comparisons)} by Holm's method; significant: adjusted "
        f"p < {statistics.ALPHA:g}); comparisons.csv has them all."
    )
    for metric in dict.fromkeys(c.metric for c in stats.comparisons):
        rows = [c for c in stats.comparisons if c.metric == metric]
        found += shown_lines(rows, SHOWN_COMPARISONS.get(metric, 5), f"on {metric}")
    return found


def shown_lines(comparisons: list[Comparison], limit: int, where: str) -> list[str]:
    """At most `limit` comparisons in words, the significant and surest first; the rest
    counted (`... and 3 more comparisons <where> (1 significant) in comparisons.csv.`)."""
    ranked = sorted(comparisons, key=lambda c: (not c.significant, c.p_adjusted, c.test.p_value))
    lines = [comparison_line(c) for c in ranked[:limit]]
    if len(ranked) > limit:
        rest = ranked[limit:]
        lines.append(
            f"... and {len(rest)} more comparisons {where} "
            f"({sum(c.significant for c in rest)} significant) in comparisons.csv."
        )
    return lines


def _study_lines(groups: list[Group]) -> list[str]:
    """Each transfer study's error-rate ratio over its seeds, with its interval."""
    found = []
    for g in groups:
        ratio = g.summaries.get(RATIO)
        if ratio is None:
            continue
        line = (
            f"Transfer study {g.label}: error-rate ratio (baseline B errors / B on A errors) "
            f"over {ratio.n} seed{'s' if ratio.n > 1 else ''}: "
        )
        if ratio.n < 2:
            found.append(line + f"{number(ratio.mean)} (one seed: no interval).")
            continue
        line += (
            f"geometric mean {number(ratio.mean)}, {_interval(ratio.ci_low, ratio.ci_high)} "
            "(t interval of the log ratio)"
        )
        if ratio.ci_low > 1:
            line += ": B on A makes fewer errors than the baseline"
        elif ratio.ci_high < 1:
            line += ": B on A makes more errors than the baseline"
        else:
            line += f": the interval includes 1, no detectable change at n = {ratio.n}"
        accuracies = [g.summaries.get(m) for m in (BASELINE, TRANSFER)]
        if all(accuracies):
            line += (
                f"; test accuracy on task B: baseline {number(accuracies[0].mean)}, B on A "
                f"{number(accuracies[1].mean)}"
            )
        found.append(line + ".")
    return found


def health_line(stats: Statistics) -> str:
    """How many runs got each gradient verdict; for the unhealthy ones, where."""
    counts: dict[str, int] = {}
    where: dict[str, list[str]] = {}
    for g in stats.groups:
        for health, n in g.health_counts().items():
            counts[health] = counts.get(health, 0) + n
            if health not in (HEALTHY, UNKNOWN):
                where.setdefault(health, []).append(f"{g.label}: {n} of {len(g.runs)}")
    if not counts:
        return ""
    parts = []
    for health, n in sorted(counts.items(), key=lambda item: health_order(item[0])):
        part = f"{health} {n}"
        if health in where:
            shown = where[health][:4]
            part += f" ({'; '.join(shown)}{'; ...' if len(where[health]) > 4 else ''})"
        parts.append(part)
    return "Gradient health (tag gradient_health), runs: " + ", ".join(parts) + "."
