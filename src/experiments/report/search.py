"""An Optuna search (`hparams_search=optuna`) read as its report shows it: the trials
ranked as the study ranked them, each over its seeds, and what the seeds allow to be
said of the best.

A trial is the runs tagged with its number (one per seed under
`hydra.sweeper.seeds_per_trial`). What the search optimized (objectives, directions, the
seed statistic) and its Pareto front come from the results file the sweeper writes into
the sweep folder; without it the search is read as the default one, `val_accuracy`
maximized. "Best" is said only when the best trial beats every other trial on the first
objective, significantly after Holm's adjustment over those comparisons: picking the top
of many trials favours a lucky one, and the runner-up alone would not cover a trial
whose seeds spread wider.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from experiments.core import names
from experiments.report import statistics
from experiments.report.compare import ABSENT, find_differences
from experiments.report.data import RunSummary
from experiments.report.groups import Comparison, Group
from experiments.report.text import number
from experiments.sweeps.objective import DEFAULT_OBJECTIVES

# Rows of the page's table of best configurations.
SHOWN_TRIALS = 5
MAXIMIZE = "maximize"


@dataclass
class Trial:
    number: int
    group: Group  # its runs, one per seed
    params: dict[str, str]  # the searched params' values

    @property
    def label(self) -> str:
        return self.group.label

    @property
    def pruned(self) -> bool:
        return any(run.tags.get(names.TRIAL_STATE_TAG) == names.TRIAL_PRUNED for run in self.runs)

    @property
    def runs(self) -> list[RunSummary]:
        return self.group.runs

    def summary(self, objective: str) -> statistics.Summary:
        return statistics.summarize(self.group.values(objective)[0])


@dataclass
class Settings:
    """What the search optimized, as its results file says."""

    objectives: list[str]
    directions: list[str]
    statistic: str = "mean"
    front: list[dict] = field(default_factory=list)
    found: bool = False  # whether the results file was there

    def better(self, k: int) -> str:
        return "higher" if self.directions[k] == MAXIMIZE else "lower"


@dataclass
class Search:
    settings: Settings
    trials: list[Trial]  # every trial, by number
    ranked: list[Trial]  # the complete ones, best first
    keys: list[str]  # the searched params
    figures: list[Path]  # Optuna's figures in the sweep folder
    comparisons: list[Comparison]  # the best trial against each other ranked one
    claimed: bool  # whether the page may call the best trial best
    lines: list[str]  # the claims in words

    @property
    def seeds_per_trial(self) -> int:
        return max((len(t.runs) for t in self.trials), default=0)


def is_search(runs: list[RunSummary]) -> bool:
    return any(names.OPTUNA_TRIAL_TAG in run.tags for run in runs)


def sweep_folder(runs: list[RunSummary], near: Path | None = None) -> Path | None:
    """The folder the sweeper wrote its results and figures into (hydra.sweep.dir): the
    one above the trials' own output folders, else `near` (a sweep's report is written
    into `<sweep dir>/report`); None when neither holds them (a search on Ray's remote
    machines, a sweep folder since deleted)."""
    above = [Path(d).parent for run in runs if (d := run.tags.get(names.OUTPUT_DIR_TAG))]
    for folder in dict.fromkeys([*above, *([near] if near else [])]):
        if (folder / names.SEARCH_RESULTS_FILE).is_file() or (
            folder / names.SEARCH_FOLDER
        ).is_dir():
            return folder
    return None


def read_settings(folder: Path | None) -> Settings:
    default = Settings(list(DEFAULT_OBJECTIVES), [MAXIMIZE] * len(DEFAULT_OBJECTIVES))
    path = folder / names.SEARCH_RESULTS_FILE if folder else None
    if path is None or not path.is_file():
        return default
    try:
        found = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return default
    objectives = list(found.get("objectives") or DEFAULT_OBJECTIVES)
    direction = found.get("direction") or MAXIMIZE
    directions = [direction] * len(objectives) if isinstance(direction, str) else list(direction)
    if len(directions) != len(objectives):
        return default
    return Settings(
        objectives,
        directions,
        found.get("seed_statistic") or "mean",
        list(found.get("pareto_front") or []),
        found=True,
    )


def figures_in(folder: Path | None) -> list[Path]:
    search = folder / names.SEARCH_FOLDER if folder else None
    return sorted(search.glob("*.png")) if search and search.is_dir() else []


def read_trials(runs: list[RunSummary]) -> list[Trial]:
    """The trials by study and number: a selection of a whole experiment may hold the
    searches of several studies, whose trial numbers each start at 0."""
    by_number: dict[tuple[str, int], list[RunSummary]] = {}
    for run in runs:
        number_text = run.tags.get(names.OPTUNA_TRIAL_TAG, "")
        if number_text.isdigit():
            study = run.tags.get(names.OPTUNA_STUDY_TAG, "")
            by_number.setdefault((study, int(number_text)), []).append(run)
    keys = searched_keys([found[0] for found in by_number.values()])
    several = len({study for study, _ in by_number}) > 1
    return [
        Trial(
            n,
            Group(f"{study}/{n}", f"{study} trial {n}" if several else f"trial {n}", found),
            {k: _value(found[0], k) for k in keys},
        )
        for (study, n), found in sorted(by_number.items())
    ]


def searched_keys(runs: list[RunSummary]) -> list[str]:
    """The config groups and params that differ between trials (one run each), less the
    params that only follow from a group (`init.name` with `init`). Params that follow
    from another param are kept: with one trial per point of a continuous space, any
    param would seem to follow from the learning rate."""
    differences = find_differences(runs)
    varying = differences.factors + differences.derived
    groups = tuple(f"{f.key}." for f in varying if f.kind == "choice")
    return [f.key for f in varying if f.kind == "choice" or not f.key.startswith(groups)]


def _value(run: RunSummary, key: str) -> str:
    return run.choices.get(key) or run.params.get(key, ABSENT)


def complete(trial: Trial, objectives: list[str]) -> bool:
    """Every seed finished with a value of every objective: the study counts a trial
    with a failed seed as failed, and so does the ranking."""
    return all(
        not run.failed
        and all((v := run.metrics.get(o)) is not None and math.isfinite(v) for o in objectives)
        for run in trial.runs
    )


def ranking_value(trial: Trial, settings: Settings, k: int = 0) -> float:
    """What the study was told of the trial's k-th objective: the mean over its seeds, or
    the 95% interval's end on the losing side (`seed_statistic: lower_bound`)."""
    s = trial.summary(settings.objectives[k])
    if settings.statistic == "mean" or s.n < 2:
        return s.mean
    return s.ci_low if settings.directions[k] == MAXIMIZE else s.ci_high


def rank(trials: list[Trial], settings: Settings) -> list[Trial]:
    found = [t for t in trials if complete(t, settings.objectives)]
    sign = -1 if settings.directions[0] == MAXIMIZE else 1
    return sorted(found, key=lambda t: (sign * ranking_value(t, settings), t.number))


def compare_best(ranked: list[Trial], objective: str) -> list[Comparison]:
    """The best trial against each other ranked trial of two values or more, on the
    objective, p-values adjusted together (Holm); none when the best has one value."""
    if not ranked:
        return []
    best = ranked[0]
    values, seeds = best.group.values(objective)
    found = []
    for other in ranked[1:]:
        other_values, other_seeds = other.group.values(objective)
        test = statistics.compare(
            values, other_values, seeds, other_seeds, (best.label, other.label)
        )
        if test is not None:
            found.append(Comparison(best.label, other.label, "trial", objective, test))
    for comparison, p in zip(found, statistics.holm([c.test.p_value for c in found]), strict=True):
        comparison.p_adjusted = float(p)
    return found


def read_search(runs: list[RunSummary], near: Path | None = None) -> Search | None:
    """The search among these runs; None when no run is a trial."""
    if not is_search(runs):
        return None
    folder = sweep_folder(runs, near)
    settings = read_settings(folder)
    trials = read_trials(runs)
    ranked = rank(trials, settings)
    comparisons = compare_best(ranked, settings.objectives[0])
    claimed = _claimed(ranked, comparisons, settings)
    keys = list(trials[0].params) if trials else []
    search = Search(settings, trials, ranked, keys, figures_in(folder), comparisons, claimed, [])
    search.lines = claim_lines(search)
    return search


def _favours_best(comparison: Comparison, settings: Settings) -> bool:
    return (comparison.test.diff > 0) == (settings.directions[0] == MAXIMIZE)


def _claimed(ranked: list[Trial], comparisons: list[Comparison], settings: Settings) -> bool:
    """Best only where every other ranked trial was compared and lost significantly."""
    return (
        len(ranked) > 1
        and len(comparisons) == len(ranked) - 1
        and all(c.significant and _favours_best(c, settings) for c in comparisons)
    )


# --- The claims in words ---


def _first(label: str) -> str:
    """A label that opens a sentence (str.capitalize would lower a study's name)."""
    return label[:1].upper() + label[1:]


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def _test_words(c: Comparison) -> str:
    t = c.test
    return (
        f"95% CI {number(t.ci_low)} to {number(t.ci_high)}; {t.name}, p = {_p(t.p_value)}, "
        f"Holm-adjusted {_p(c.p_adjusted)}; n = {t.n_a} vs {t.n_b}"
    )


def mean_words(trial: Trial, objective: str) -> str:
    """`0.8412 (95% CI 0.8301 to 0.8523, 3 seeds)`, or the value of a single seed."""
    s = trial.summary(objective)
    if s.n < 2 or not math.isfinite(s.ci_low):
        return f"{number(s.mean)} (1 seed)"
    return f"{number(s.mean)} (95% CI {number(s.ci_low)} to {number(s.ci_high)}, {s.n} seeds)"


def claim_lines(search: Search) -> list[str]:
    settings, ranked = search.settings, search.ranked
    objective = settings.objectives[0]
    total = len(search.trials)
    counts = f"An Optuna search of {total} trial{'s' if total != 1 else ''}"
    left_out = total - len(ranked)
    if left_out:
        pruned = sum(t.pruned for t in search.trials)
        counts += f", {len(ranked)} complete ({left_out} pruned or failed"
        counts += f", {pruned} of them pruned)" if pruned else ")"
    lines = [counts + f", ranked by {_ranked_by(settings, search.seeds_per_trial)}."]
    if not settings.found:
        lines.append(
            f"No {names.SEARCH_RESULTS_FILE} beside the trials' folders: ranked as a "
            f"search of {objective}, maximized."
        )
    if not ranked:
        return lines + ["No trial completed: nothing to rank."]
    best = ranked[0]
    if len(ranked) == 1:
        return lines + [
            f"Only {best.label} completed ({objective} {mean_words(best, objective)}): "
            "nothing to compare it with."
        ]
    if best.summary(objective).n < 2:
        return lines + [_single_seed_line(search)]
    if search.claimed:
        runner_up = search.comparisons[0]
        lines.append(
            f"{_first(best.label)} is the best on {objective}: {mean_words(best, objective)}; "
            f"it beats every other complete trial significantly after Holm's adjustment "
            f"over the {len(search.comparisons)} comparisons, the runner-up, "
            f"{runner_up.b}, by {number(abs(runner_up.test.diff))} "
            f"({_test_words(runner_up)})."
        )
    else:
        lines.append(_undecided_line(search))
    if len(settings.objectives) > 1:
        lines.append(_front_line(search))
    return lines


def _ranked_by(settings: Settings, seeds: int) -> str:
    objective = settings.objectives[0]
    better = settings.better(0)
    if seeds < 2:
        return f"{objective} ({better} is better)"
    if settings.statistic == "mean":
        return f"{objective} ({better} is better; the mean over seeds)"
    end = "lower" if settings.directions[0] == MAXIMIZE else "upper"
    return f"{objective} ({better} is better; the {end} end of the 95% interval over seeds)"


def _single_seed_line(search: Search) -> str:
    objective = search.settings.objectives[0]
    best = search.ranked[0]
    highest = "highest" if search.settings.directions[0] == MAXIMIZE else "lowest"
    return (
        f"One seed per trial: no interval. {_first(best.label)}'s {objective} "
        f"{number(best.summary(objective).mean)} is the {highest} value the search found, "
        "not a claim that its configuration is best: a second seed could reorder the top "
        "trials (hydra.sweeper.seeds_per_trial=3 gives each trial an interval)."
    )


def _undecided_line(search: Search) -> str:
    """Which trials the seeds cannot tell from the best, with the runner-up's test."""
    objective = search.settings.objectives[0]
    best = search.ranked[0]
    by_label = {c.b: c for c in search.comparisons}
    runner_up = search.ranked[1]
    tied = [
        c.b for c in search.comparisons if not (c.significant and _favours_best(c, search.settings))
    ]
    # A trial of one finished seed has no test: it is not shown to be worse either.
    tied += [t.label for t in search.ranked[1:] if t.label not in by_label]
    tied.sort(key=[t.label for t in search.ranked].index)
    shown = ", ".join([best.label, *tied[: SHOWN_TRIALS - 1]])
    more = f" and {len(tied) - SHOWN_TRIALS + 1} more" if len(tied) >= SHOWN_TRIALS else ""
    line = f"The top trials cannot be told apart on {objective}: {shown}{more}"
    line += f" (none of the others is significantly worse than {best.label}). "
    compared = by_label.get(runner_up.label)
    if compared is None:
        return line + (f"{_first(runner_up.label)}, the runner-up, has one finished seed: no test.")
    return line + (
        f"{_first(best.label)} against the runner-up, {runner_up.label}: "
        f"difference {number(compared.test.diff)} ({_test_words(compared)})."
    )


def _front_line(search: Search) -> str:
    front = [str(t.get("trial")) for t in search.settings.front]
    objectives = ", ".join(search.settings.objectives)
    if not front:
        return f"Several objectives ({objectives}): no Pareto front listed."
    return (
        f"Several objectives ({objectives}): no trial is best on all of them; the Pareto "
        f"front, the trials no other beats on every objective, is trial"
        f"{'s' if len(front) > 1 else ''} {', '.join(front)}. The table ranks by "
        f"{search.settings.objectives[0]}, the first."
    )
