"""The comparison page of a selection of runs: figures, tables and words, written into
one folder; and a sweep's own page, logged to its parent run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from experiments.report import chapter_figures, claims, compare, figures, search_page
from experiments.report import html as page
from experiments.report.chapter import Chapter, page_title, read_chapter
from experiments.report.chapter_page import anchor, summary_lines, write_chapter_page
from experiments.report.data import ReportError, RunSummary, Selection, select_runs
from experiments.report.groups import (
    COMPARISON_COLUMNS,
    GROUP_COLUMNS,
    Statistics,
    group_statistics,
)
from experiments.report.search import Search, read_search

log = logging.getLogger(__name__)
SWEEP_REPORT_ARTIFACTS = "report"
# A two-factor matrix is drawn when at least this share of its cells holds runs: two
# factors that were not crossed (presets that each set their own activation) would fill
# a grid with "no run".
CROSSED_SHARE = 0.5


@dataclass
class Report:
    html: Path
    csv: Path
    figures: dict[str, Path]
    matrices: dict[str, compare.Matrix]
    lines: list[str]
    runs: list[RunSummary]
    statistics: Statistics
    groups_csv: Path
    comparisons_csv: Path
    search: Search | None = None


def crossed(found: dict[str, compare.Matrix]) -> dict[str, compare.Matrix]:
    """The matrices whose two factors were crossed: most cells hold runs."""
    return {name: m for name, m in found.items() if (m.runs > 0).mean() >= CROSSED_SHARE}


def build_report(selection: Selection, out_dir: Path, title: str | None = None) -> Report:
    """Figures, runs.csv, groups.csv, comparisons.csv and report.html of the selected
    runs, written into out_dir. A sweep of presets gets the chapter's page, with its own
    title; any other selection the factorial page, with a Search section (and
    trials.csv) when its runs are an Optuna search's trials (report.search)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = selection.runs
    chapter = read_chapter(runs)
    if chapter is not None:
        return build_chapter_report(selection, chapter, out_dir)
    differences = compare.find_differences(runs)
    factors = differences.factors
    styles = figures.RunStyles(runs, factors)
    stats = group_statistics(runs, factors)
    notes: list[str] = []

    written = {
        "learning_curves": figures.learning_curves(runs, styles, out_dir / "learning_curves.png")
    }
    if any(len(g.runs) > 1 for g in stats.groups):
        written["group_curves"] = figures.group_curves(
            stats.groups, styles, out_dir / "group_curves.png"
        )
    if any(run.diagnostics for run in runs):
        written["depth_profiles"] = figures.depth_profiles(
            runs, styles, out_dir / "depth_profiles.png"
        )
    else:
        notes.append(
            "No run carries gradient diagnostics (diagnostics/diagnostics.json or grad/* "
            "metrics): no profiles over depth, no depth_ratio."
        )
    matrices = crossed(compare.matrices(runs, factors))
    written |= _matrix_figures(matrices, out_dir)
    if len(factors) < 2:
        notes.append("Fewer than two factors vary: no two-factor matrix.")
    elif not matrices:
        notes.append(
            f"{factors[0].key} and {factors[1].key} were not crossed (most of their "
            "combinations have no run): no two-factor matrix."
        )

    cols = page.columns(runs, factors)
    csv_path = page.write_csv(runs, cols, out_dir / "runs.csv")
    groups_csv = page.write_rows(out_dir / "groups.csv", GROUP_COLUMNS, stats.group_rows())
    comparisons_csv = page.write_rows(
        out_dir / "comparisons.csv", COMPARISON_COLUMNS, stats.comparison_rows()
    )
    # A search's section reads the sweep folder the report's folder usually lies in.
    search = read_search(runs, near=out_dir.parent)
    sections = []
    if search is not None:
        search_figures = search_page.copy_figures(search, out_dir)
        written |= search_figures
        search_page.write_trials(search, out_dir)
        sections.append(search_page.search_section(search, search_figures))
    said = (search.lines if search else []) + claims.lines(stats) + [claims.health_line(stats)]
    lines = compare.summary_lines(runs, differences, said)  # it drops the empty ones
    html = page.write_page(
        out_dir / "report.html",
        title or f"Report: {selection.experiment}",
        f"{len(runs)} runs of {selection.source}.",
        lines,
        written,
        matrices,
        runs,
        cols,
        notes,
        styles.describe(),
        stats,
        sections,
    )
    return Report(
        html, csv_path, written, matrices, lines, runs, stats, groups_csv, comparisons_csv, search
    )


def _matrix_figures(matrices: dict[str, compare.Matrix], out_dir: Path) -> dict[str, Path]:
    if not matrices:
        return {}
    written = {
        "matrix_val_accuracy": figures.matrix_figure(
            [matrices["val_accuracy"]], out_dir / "matrix_val_accuracy.png"
        )
    }
    ratio = [m for name, m in matrices.items() if name.startswith("depth_ratio")]
    if ratio:
        written["matrix_depth_ratio"] = figures.matrix_figure(
            ratio, out_dir / "matrix_depth_ratio.png"
        )
    return written


def build_chapter_report(selection: Selection, chapter: Chapter, out_dir: Path) -> Report:
    """The page of a sweep of presets (report.chapter_page); runs.csv has a column for
    every group and param that differs, the page only the preset."""
    runs = selection.runs
    differences = compare.find_differences(runs)
    written = {
        anchor(section): chapter_figures.section_figure(
            presets, out_dir / f"section_{anchor(section)}.png"
        )
        for section, presets in chapter.sections()
    }
    matrices = crossed(compare.matrices(runs, differences.factors))
    written |= _matrix_figures(matrices, out_dir)
    notes = []
    if not any(run.diagnostics for run in runs):
        notes.append(
            "No run carries gradient diagnostics (diagnostics/diagnostics.json or grad/* "
            "metrics): no profiles over depth, no depth_ratio."
        )
    stats = chapter.statistics
    csv_path = page.write_csv(
        runs, page.columns(runs, differences.factors + differences.derived), out_dir / "runs.csv"
    )
    groups_csv = page.write_rows(out_dir / "groups.csv", GROUP_COLUMNS, stats.group_rows())
    comparisons_csv = page.write_rows(
        out_dir / "comparisons.csv", COMPARISON_COLUMNS, stats.comparison_rows()
    )
    lines = summary_lines(chapter, runs)
    source = (
        f"Sweep {selection.parent_run_id} in experiment '{selection.experiment}'."
        if selection.parent_run_id
        else f"Runs of {selection.source}."
    )
    html = write_chapter_page(
        out_dir / "report.html",
        page_title(chapter, selection.experiment),
        source,
        chapter,
        lines,
        written,
        matrices,
        differences,
        runs,
        page.columns(runs, [chapter.factor]),
        notes,
    )
    return Report(
        html, csv_path, written, matrices, lines, runs, stats, groups_csv, comparisons_csv
    )


def log_sweep_report(client, parent_run_id: str, out_dir: Path) -> Path | None:
    """Build the report of a sweep's children into out_dir and log it to the parent run
    under `report/`, where the MLflow UI shows report.html. Returns the page's path, or
    None when no report could be built: at the end of a multirun a report that fails
    must not lose the sweep's own record, so the reason is logged, not raised."""
    try:
        selection = select_runs(client, parent_run_id=parent_run_id)
        report = build_report(
            selection, Path(out_dir), title=f"Sweep {client.get_run(parent_run_id).info.run_name}"
        )
        client.log_artifacts(parent_run_id, str(out_dir), SWEEP_REPORT_ARTIFACTS)
    except ReportError as e:
        log.warning("no sweep report for run %s: %s", parent_run_id, e)
        return None
    except Exception:  # a report is an extra: never the reason a sweep ends in a traceback
        log.warning("sweep report for run %s failed", parent_run_id, exc_info=True)
        return None
    log.info("sweep report: %s (logged to run %s)", report.html, parent_run_id)
    return report.html
