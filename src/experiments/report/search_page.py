"""The "Search" section of a search's page: the claims, the best configurations with
their intervals over seeds, the Pareto front of several objectives, and Optuna's figures
of the history and the parameter importances, copied from the sweep folder beside the
page and embedded in it; every trial in trials.csv."""

from __future__ import annotations

import math
import shutil
from html import escape
from pathlib import Path

from experiments.report import html as page
from experiments.report.search import SHOWN_TRIALS, Search, Trial, complete, ranking_value
from experiments.report.text import number

SECTION_ID = "search"
FIGURE_PREFIX = "search_"
# Optuna's figures (the sweeper's `_figures`) in the page's order; one of several
# objectives is named `<figure>_<objective>`.
FIGURE_ORDER = (
    "pareto_front",
    "optimization_history",
    "param_importances",
    "parallel_coordinate",
    "intermediate_values",
)
CAPTIONS = {
    "pareto_front": "The Pareto front (Optuna): every complete trial by its objectives as "
    "the study was told them; the front's trials, which no other trial beats on every "
    "objective, stand out.",
    "optimization_history": "The search's history (Optuna): each trial's value as the study "
    "was told it (over seeds: hydra.sweeper.seed_statistic), and the best so far.",
    "param_importances": "Parameter importances (Optuna's default evaluator, fANOVA): the "
    "share of the value's variance each searched parameter explains over the complete "
    "trials. A rough guide with few trials, and no test: no interval comes with it.",
    "parallel_coordinate": "Parallel coordinates (Optuna): each trial's parameters and value.",
    "intermediate_values": "Intermediate values (Optuna): each trial's val_accuracy after "
    "each epoch as reported to the pruner.",
}
# trials.csv after the searched params, per objective; `told` is what the study was told.
OBJECTIVE_COLUMNS = ("mean", "std", "ci_low", "ci_high", "told")


def _figure_order(path: Path, objectives: list[str]) -> tuple[int, int, str]:
    """Optuna's figures in FIGURE_ORDER, each objective's in the search's order."""
    for k, name in enumerate(FIGURE_ORDER):
        if path.stem == name:
            return k, -1, path.stem
        objective = path.stem.removeprefix(f"{name}_")
        if objective != path.stem:
            return k, objectives.index(objective) if objective in objectives else 0, path.stem
    return len(FIGURE_ORDER), 0, path.stem


def copy_figures(search: Search, out_dir: Path) -> dict[str, Path]:
    """The sweep folder's figures beside the page (`search_<figure>.png`), in the
    page's order: the report's folder is logged to the parent run on its own."""
    copied = {}
    objectives = search.settings.objectives
    for source in sorted(search.figures, key=lambda p: _figure_order(p, objectives)):
        target = out_dir / f"{FIGURE_PREFIX}{source.name}"
        shutil.copyfile(source, target)
        copied[f"{FIGURE_PREFIX}{source.stem}"] = target
    return copied


def caption(name: str) -> str:
    stem = name.removeprefix(FIGURE_PREFIX)
    for figure in FIGURE_ORDER:
        if stem == figure:
            return CAPTIONS[figure]
        if stem.startswith(f"{figure}_"):
            return f"For {stem.removeprefix(f'{figure}_')}: {CAPTIONS[figure]}"
    return ""


def _state(trial: Trial, search: Search) -> str:
    if complete(trial, search.settings.objectives):
        return "complete"
    return "pruned" if trial.pruned else "failed"


def trial_columns(search: Search) -> tuple[str, ...]:
    per_objective = [f"{o}_{c}" for o in search.settings.objectives for c in OBJECTIVE_COLUMNS]
    return ("trial", "state", "seeds", *search.keys, *per_objective)


def trial_rows(search: Search) -> list[dict[str, object]]:
    """trials.csv: one row per trial, in the study's order."""
    rows = []
    settings = search.settings
    for trial in search.trials:
        state = _state(trial, search)
        row: dict[str, object] = {"trial": trial.number, "state": state, "seeds": len(trial.runs)}
        row |= trial.params
        for k, objective in enumerate(settings.objectives):
            s = trial.summary(objective)
            told = ranking_value(trial, settings, k) if state == "complete" else math.nan
            values = (s.mean, s.std, s.ci_low, s.ci_high, told)
            row |= {f"{objective}_{c}": v for c, v in zip(OBJECTIVE_COLUMNS, values, strict=True)}
        rows.append(row)
    return rows


def write_trials(search: Search, out_dir: Path) -> Path:
    return page.write_rows(out_dir / "trials.csv", trial_columns(search), trial_rows(search))


def _param(value: str) -> str:
    """A sampled float as a reader compares it: 0.0123, not 0.012345678901."""
    try:
        return f"{float(value):.4g}" if "." in value or "e" in value else value
    except ValueError:
        return value


def _objective_cell(trial: Trial, objective: str) -> str:
    s = trial.summary(objective)
    if s.n == 0 or not math.isfinite(s.mean):
        return "<td>—</td>"
    if s.n < 2 or not math.isfinite(s.ci_low):
        return f"<td>{number(s.mean)}<br><small>1 seed, no interval</small></td>"
    return (
        f"<td>{number(s.mean)}<br><small>95% CI {number(s.ci_low)} to "
        f"{number(s.ci_high)}</small></td>"
    )


def best_table(search: Search) -> str:
    """The top trials, best first; the first row marked only where the claim holds."""
    objectives = search.settings.objectives
    head = ["rank", "trial", *search.keys, "seeds", *objectives]
    rows = []
    for k, trial in enumerate(search.ranked[:SHOWN_TRIALS], 1):
        css = "best" if k == 1 and search.claimed else ""
        cells = [f"<td>{k}</td>", f"<td>{trial.number}</td>"]
        cells += [
            f'<td class="text">{escape(_param(trial.params[key]))}</td>' for key in search.keys
        ]
        cells.append(f"<td>{len(trial.runs)}</td>")
        cells += [_objective_cell(trial, o) for o in objectives]
        rows.append(f'<tr class="{css}" data-trial="{trial.number}">{"".join(cells)}</tr>')
    header = "".join(
        f'<th class="{"text" if t in search.keys else ""}">{escape(t)}</th>' for t in head
    )
    return (
        f'<table class="search"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def front_table(search: Search) -> str:
    """The Pareto front as the results file lists it: the values the study was told."""
    objectives = search.settings.objectives
    head = "".join(f"<th>{escape(t)}</th>" for t in ("trial", "params", *objectives))
    rows = []
    for entry in search.settings.front:
        params = ", ".join(f"{k}={_param(str(v))}" for k, v in (entry.get("params") or {}).items())
        values = entry.get("values") or {}
        cells = [f"<td>{escape(str(entry.get('trial', '')))}</td>"]
        cells.append(f'<td class="text">{escape(params)}</td>')
        cells += [f"<td>{escape(number(values.get(o)))}</td>" for o in objectives]
        rows.append(f'<tr data-trial="{escape(str(entry.get("trial", "")))}">{"".join(cells)}</tr>')
    return (
        f'<table class="front"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def search_section(search: Search, figures: dict[str, Path]) -> str:
    """`figures`: the copies of copy_figures."""
    shown = min(SHOWN_TRIALS, len(search.ranked))
    parts = [
        f'<h2 id="{SECTION_ID}">Search</h2>',
        '<ul class="claims">' + "".join(f"<li>{escape(s)}</li>" for s in search.lines) + "</ul>",
    ]
    if search.ranked:
        parts.append(
            f"<h3>The best configurations: top {shown} of {len(search.ranked)} complete "
            "trials (every trial in trials.csv)</h3>"
        )
        parts.append(best_table(search))
        parts.append(
            '<p class="small">Each objective: the mean over the trial\'s seeds and the 95% '
            "t interval of the mean. The first row is marked only where the seeds show it "
            "best.</p>"
        )
    if search.settings.front:
        n = len(search.settings.front)
        parts.append(f"<h3>The Pareto front ({n} trial{'s' if n != 1 else ''})</h3>")
        parts.append(front_table(search))
    parts += [page.figure_html(name, path, caption(name)) for name, path in figures.items()]
    if not figures:
        parts.append(
            "<p><em>No figures of the search: the sweep folder's search/ folder was not "
            "found (or the sweeper drew none).</em></p>"
        )
    return "\n".join(parts)
