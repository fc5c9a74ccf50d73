"""The page of a sweep of presets, read in one screen at 1280 px: a title that says
what ran, one table with a row per preset (what it shows and what it did), then a
section per part of the chapter with its figure and, over several seeds, its claims.
Everything else (what differs param by param, the configurations, the comparisons,
every run) waits in collapsed blocks, in scrolling boxes when opened, and in the CSV
files beside the page.
"""

from __future__ import annotations

import math
import re
from html import escape
from pathlib import Path

from experiments.report import claims
from experiments.report import html as page
from experiments.report.chapter import (
    Chapter,
    Preset,
    depth_ratio,
    health_words,
    seconds_per_epoch,
)
from experiments.report.compare import Differences, Matrix
from experiments.report.data import RunSummary
from experiments.report.groups import BASELINE, RATIO, TRANSFER, Group, seed_of, verdict_of
from experiments.report.statistics import ALPHA

STYLE = (
    page.STYLE
    + """
body { max-width: 1240px; }
p.source { color: #555; }
table.presets { width: 100%; font-size: 0.9em; }
table.presets td.purpose { text-align: left; }
table.presets td { white-space: nowrap; }
table.presets td.purpose { white-space: normal; }
li, td.purpose { overflow-wrap: anywhere; }
table.presets tr.section th { text-align: left; background: #e3ebf6; font-size: 1.05em; }
table.presets td.preset { text-align: left; font-weight: 600; white-space: nowrap; }
small, .small { color: #666; font-size: 0.85em; }
details { margin: 0.8em 0; }
details > summary { cursor: pointer; font-weight: 600; }
.scroll { overflow-x: auto; max-width: 100%; }
code.keys { font-size: 0.85em; overflow-wrap: anywhere; }
"""
)
SECTION_CAPTION = (
    "Each section of the chapter has a figure. Left: validation accuracy after each epoch, one line per preset (the mean over its "
    "seeds, with the 95% interval of the mean as a band when there are several). Middle "
    "and right: the gradient signal std (std of dL/d pre-activation) of each hidden block "
    "at initialization and at the last probe step, log scale, geometric mean over seeds: "
    "a line that falls towards block 1 is a vanishing gradient, one that rises an "
    "exploding one, a flat line trains every layer. A transfer study draws each phase."
)
TEXT_COLUMNS = ("preset", "what it shows", "gradient health")
# Lines of claims under a section before the rest are counted (comparisons.csv has all).
SHOWN_CLAIMS = 6
TABLE_HEAD = ("preset", "what it shows", "val accuracy", "test accuracy",
              "depth ratio at init", "depth ratio at end", "gradient health", "s / epoch")  # fmt: skip


def anchor(section: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-")


def _accuracy(group: Group, metric: str) -> str:
    """The mean and its interval over seeds, or the single value and "1 seed"; a dash
    where no run finished."""
    s = group.summaries.get(metric)
    if s is None or s.n == 0 or not math.isfinite(s.mean):
        return "—"
    if s.n == 1 or not math.isfinite(s.ci_low):
        return f"{s.mean:.4f}<br><small>1 seed</small>"
    # Three decimals and a dash keep the interval on one line of a narrow column.
    return f"{s.mean:.4f}<br><small>95% CI {s.ci_low:.3f}–{s.ci_high:.3f}, {s.n} seeds</small>"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _transfer_words(preset: Preset) -> str:
    """What a transfer study's own run holds: B on A against its baseline."""
    summaries = preset.main.summaries
    transfer, baseline, ratio = (summaries.get(k) for k in (TRANSFER, BASELINE, RATIO))
    if not (transfer and baseline and transfer.n and baseline.n):
        return ""
    words = f"Test accuracy on task B: B on A {transfer.mean:.4f}, baseline {baseline.mean:.4f}"
    if ratio and ratio.n:
        words += f"; error-rate ratio (baseline / B on A) {ratio.mean:.3g}"
        if ratio.n > 1 and math.isfinite(ratio.ci_low):
            words += f" (95% CI {ratio.ci_low:.3g} to {ratio.ci_high:.3g})"
    return words + ". The row's numbers are B on A's."


def _row(preset: Preset) -> str:
    trained = preset.trained
    failed = preset.main.failed
    name = escape(preset.name)
    if failed:
        name += f"<br><small>{failed} of {len(preset.runs)} runs did not finish</small>"
    what = escape(preset.purpose)
    if preset.phases and (words := _transfer_words(preset)):
        what += f"<br><small>{escape(words)}</small>"
    reasons = "; ".join(dict.fromkeys(verdict_of(run).reason for run in preset.runs))
    seconds = seconds_per_epoch(trained)
    cells = [
        f'<td class="preset">{name}</td>',
        f'<td class="purpose">{what}</td>',
        f"<td>{_accuracy(trained, 'val_accuracy')}</td>",
        f"<td>{_accuracy(trained, 'test_accuracy')}</td>",
        f"<td>{_ratio(depth_ratio(trained, 'init'))}</td>",
        f"<td>{_ratio(depth_ratio(trained, 'last'))}</td>",
        f'<td class="text"><span title="{escape(reasons)}">{escape(health_words(preset))}</span></td>',
        f"<td>{'—' if seconds is None else f'{seconds:.1f}'}</td>",
    ]
    css = "failed" if failed == len(preset.runs) else ""
    return f'<tr class="{css}" data-preset="{escape(preset.name)}">{"".join(cells)}</tr>'


def presets_table(chapter: Chapter) -> str:
    """One row per preset, grouped by section. No row is highlighted as the best: the
    claims say which differences the seeds can tell, and accuracies on a transfer
    study's task B are not comparable with the others."""
    head = "".join(
        f'<th class="{"text" if t in TEXT_COLUMNS else ""}">{escape(t)}</th>' for t in TABLE_HEAD
    )
    body = []
    for section, presets in chapter.sections():
        body.append(
            f'<tr class="section"><th colspan="{len(TABLE_HEAD)}">'
            f'<a href="#{anchor(section)}">{escape(section)}</a></th></tr>'
        )
        body += [_row(p) for p in presets]
    return (
        f'<table class="presets"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _seed_line(chapter: Chapter) -> str:
    stats = chapter.statistics
    if not stats.repeated:
        return (
            "One seed per preset: each number is a single run, not a ranking, since a "
            "difference between two runs cannot be told from seed noise. make study "
            "SEEDS=5 runs every preset over seeds 42-46 and compares the presets of each "
            "section."
        )
    found = stats.comparisons
    significant = sum(c.significant for c in found)
    return (
        f"{len(chapter.seeds)} seeds per preset: {len(found)} comparisons between presets "
        f"of the same section, {significant} significant (p-values adjusted for all "
        f"{len(found)} together by Holm's method; significant: adjusted p < {ALPHA:g}); "
        "comparisons.csv has them all."
    )


def summary_lines(chapter: Chapter, runs: list[RunSummary]) -> list[str]:
    failed = [run for run in runs if run.failed]
    phases = sum(len(p.phases) for p in chapter.presets)
    count = f"{len(chapter.presets)} presets in {len(runs)} runs"
    if phases:
        count += " (a transfer study adds a run per phase)"
    count += (
        f": {len(runs) - len(failed)} finished, {len(failed)} did not."
        if failed
        else ": all finished."
    )
    lines = [count, _seed_line(chapter), claims.health_line(chapter.statistics)]
    preset_of = {run.run_id: p.name for p in chapter.presets for g in (p.main, *p.phases)
                 for run in g.runs}  # fmt: skip
    for run in failed[:5]:
        seed = seed_of(run)
        where = preset_of.get(run.run_id, run.name) + (f" (seed {seed})" if seed else "")
        lines.append(f"{run.status}: {where}: {run.failure_reason or 'no reason recorded'}")
    if len(failed) > 5:
        lines.append(f"... and {len(failed) - 5} more runs that did not finish (runs.csv).")
    return [line for line in lines if line]


def section_claims(chapter: Chapter, presets: list[Preset]) -> list[str]:
    """The section's comparisons in words, significant ones first."""
    return claims.shown_lines(chapter.comparisons_of(presets), SHOWN_CLAIMS, "in this section")


def _differences_block(differences: Differences) -> str:
    """Every config group and param that differs between the presets, collapsed."""
    groups = [f.key for f in differences.factors + differences.derived if f.kind == "choice"]
    params = sorted(f.key for f in differences.factors + differences.derived if f.kind == "param")
    return (
        f"<details><summary>What differs between the presets: {len(groups)} config groups "
        f"and {len(params)} params (each run's values in runs.csv)</summary>"
        f'<p>Config groups: <code class="keys">{escape(", ".join(groups))}</code></p>'
        f'<p>Params: <code class="keys">{escape(", ".join(params))}</code></p></details>'
    )


def _collapsed(summary: str, body: str) -> str:
    return (
        f'<details><summary>{escape(summary)}</summary><div class="scroll">{body}</div></details>'
    )


def write_chapter_page(
    path: Path,
    title: str,
    source: str,
    chapter: Chapter,
    lines: list[str],
    figures: dict[str, Path],
    matrices: dict[str, Matrix],
    differences: Differences,
    runs: list[RunSummary],
    cols: list[page.Column],
    notes: list[str],
) -> Path:
    """`figures` holds one figure per section (named by the section's anchor) and the
    matrices' figures (`matrix_*`)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="source">{escape(source)}</p>',
        '<ul class="summary">' + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>",
        presets_table(chapter),
        _differences_block(differences),
    ]
    parts += [f"<p><em>{escape(note)}</em></p>" for note in notes]
    parts.append(f'<p class="small">{escape(SECTION_CAPTION)}</p>')
    for section, presets in chapter.sections():
        parts.append(f'<h2 id="{anchor(section)}">{escape(section)}</h2>')
        if (figure := figures.get(anchor(section))) is not None:
            parts.append(page.figure_html(anchor(section), figure))
        said = section_claims(chapter, presets)
        if said:
            parts.append(
                '<ul class="claims">' + "".join(f"<li>{escape(s)}</li>" for s in said) + "</ul>"
            )
    if matrices:
        parts.append("<h2>Two-factor matrices</h2>")
        parts += [page.figure_html(n, p) for n, p in figures.items() if n.startswith("matrix_")]
        parts += [page.matrix_table(name, matrix) for name, matrix in matrices.items()]
    stats = chapter.statistics
    parts.append(
        _collapsed(f"Configurations ({len(stats.groups)}): groups.csv", page.groups_table(stats))
    )
    if stats.comparisons:
        parts.append(
            _collapsed(
                f"Comparisons ({len(stats.comparisons)}): comparisons.csv",
                page.comparisons_table(stats),
            )
        )
    parts.append(_collapsed(f"Runs ({len(runs)}): runs.csv", page.runs_table(runs, cols)))
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
