"""`python -m experiments.report`: one HTML page that compares runs side by side.

    python -m experiments.report                          # every run of gradient-lab
    python -m experiments.report --parent-run <id>        # one sweep's runs
    python -m experiments.report --filter "tags.\\`choice.activation\\` = 'selu'"

The page (report.html) opens with the runs' differences in words, then the learning
curves, the gradient and activation profiles over depth, the two-factor matrices and
the runs table; its PNG figures and runs.csv lie beside it. No TensorFlow is imported:
the report only reads the MLflow store.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException

from experiments import report_compare as compare
from experiments import report_figures as figures
from experiments import report_html as page
from experiments.report_data import ReportError, RunSummary, Selection, select_runs

log = logging.getLogger(__name__)
REPORTS_DIR = "reports"
SWEEP_REPORT_ARTIFACTS = "report"


@dataclass
class Report:
    html: Path
    csv: Path
    figures: dict[str, Path]
    matrices: dict[str, compare.Matrix]
    lines: list[str]
    runs: list[RunSummary]


def build_report(selection: Selection, out_dir: Path, title: str | None = None) -> Report:
    """Figures, runs.csv and report.html of the selected runs, written into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = selection.runs
    differences = compare.find_differences(runs)
    factors = differences.factors
    styles = figures.RunStyles(runs, factors)
    notes: list[str] = []

    written = {
        "learning_curves": figures.learning_curves(runs, styles, out_dir / "learning_curves.png")
    }
    if any(run.diagnostics for run in runs):
        written["depth_profiles"] = figures.depth_profiles(
            runs, styles, out_dir / "depth_profiles.png"
        )
    else:
        notes.append(
            "No run carries gradient diagnostics (diagnostics/diagnostics.json or grad/* "
            "metrics): no profiles over depth, no depth_ratio."
        )
    matrices = compare.matrices(runs, factors)
    if matrices:
        written["matrix_val_accuracy"] = figures.matrix_figure(
            [matrices["val_accuracy"]], out_dir / "matrix_val_accuracy.png"
        )
        ratio = [m for name, m in matrices.items() if name.startswith("depth_ratio")]
        if ratio:
            written["matrix_depth_ratio"] = figures.matrix_figure(
                ratio, out_dir / "matrix_depth_ratio.png"
            )
    elif len(factors) < 2:
        notes.append("Fewer than two factors vary: no two-factor matrix.")

    cols = page.columns(runs, factors)
    csv_path = page.write_csv(runs, cols, out_dir / "runs.csv")
    lines = compare.summary_lines(runs, differences)
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
    )
    return Report(html, csv_path, written, matrices, lines, runs)


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.report",
        description="Compare MLflow runs side by side in one HTML page with PNG figures.",
    )
    parser.add_argument(
        "-e",
        "--experiment",
        default=None,
        help="experiment name (default: gradient-lab; ignored with --parent-run)",
    )
    parser.add_argument(
        "-p",
        "--parent-run",
        default=None,
        metavar="RUN_ID",
        help="a sweep's parent run id: report its child runs",
    )
    parser.add_argument(
        "-f",
        "--filter",
        default=None,
        metavar="MLFLOW_FILTER",
        help="MLflow search filter on params, tags, metrics, e.g. "
        "\"params.`optimizer.learning_rate` = '0.01'\" or \"tags.`choice.init` = 'he_normal'\"",
    )
    parser.add_argument(
        "-o",
        "--out",
        default=None,
        type=Path,
        help=f"output folder (default: {REPORTS_DIR}/<experiment> or {REPORTS_DIR}/sweep-<id>)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)",
    )
    return parser


def _client(configured: str | None):
    from mlflow.tracking import MlflowClient

    from experiments.tracking import tracking_uri

    uri = tracking_uri(configured, Path.cwd())
    # Opening a SQLite URI creates the file: a report must not leave an empty store behind.
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise ReportError(
            f"tracking store {uri[len('sqlite:///') :]} does not exist: no runs recorded there "
            "(run from the folder that holds mlflow.db, or pass --tracking-uri)"
        )
    return MlflowClient(uri)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # One progress bar per run read from a remote artifact store would bury the result.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.perf_counter()
    try:
        client = _client(args.tracking_uri)
        selection = select_runs(client, args.experiment, args.parent_run, args.filter)
        name = f"sweep-{args.parent_run[:8]}" if args.parent_run else selection.experiment
        out_dir = args.out or Path(REPORTS_DIR) / name.replace("/", "_")
        report = build_report(selection, out_dir)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except MlflowException as e:
        print(
            f"error: tracking store {args.tracking_uri or 'default'}: {e.message}", file=sys.stderr
        )
        return 1
    failed = sum(run.failed for run in report.runs)
    print(
        f"report of {len(report.runs)} runs ({failed} did not finish): {report.html} "
        f"({len(report.figures)} figures, built in {time.perf_counter() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
