"""`python -m experiments.report`: one HTML page that compares runs side by side.

    python -m experiments.report                          # every run of gradient-lab
    python -m experiments.report --parent-run <id>        # one sweep's runs
    python -m experiments.report --filter "tags.\\`choice.activation\\` = 'selu'"

The page (report.html) opens with the runs' differences in words, then the learning
curves, the gradient and activation profiles over depth, the two-factor matrices and
the runs table; its PNG figures and runs.csv lie beside it. Runs of a sweep of presets
(`make study`) get the chapter's page instead (report.chapter_page): one row per
preset, the chapter's sections, their figures and claims. No TensorFlow is imported:
the report only reads the MLflow store.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mlflow.exceptions import MlflowException

from experiments.core import names
from experiments.report.build import build_report
from experiments.report.data import ReportError, select_runs
from experiments.tracking.orphans import close_orphans
from experiments.tracking.store import TrackingError, open_store, tracking_uri

REPORTS_DIR = "reports"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradlab-report",
        description="Compare MLflow runs side by side in one HTML page with PNG figures.",
    )
    parser.add_argument(
        "-e",
        "--experiment",
        default=None,
        help=f"experiment name (default: {names.DEFAULT_EXPERIMENT}; ignored with --parent-run)",
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
    """The store, usable (never created: a report must not leave an empty store
    behind), with the runs its dead processes left RUNNING closed first."""
    try:
        client = open_store(tracking_uri(configured, Path.cwd()), create=False)
    except TrackingError as e:
        raise ReportError(str(e)) from None
    close_orphans(client, [e.experiment_id for e in client.search_experiments()])
    return client


def _output_folder(out_dir: Path) -> Path:
    """The report's folder, made now: a file in its place, a file on its path or a folder
    that cannot be written is said before any run is read."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        what = "exists and is not a folder" if isinstance(e, FileExistsError) else e.strerror
        raise ReportError(
            f"report folder {out_dir}: {what}; give -o a folder (new or existing, "
            "writable) for report.html and its figures"
        ) from None
    return out_dir


def _say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # One progress bar per run read from a remote artifact store would bury the result.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.perf_counter()
    try:
        out_dir = _output_folder(args.out) if args.out else None
        client = _client(args.tracking_uri)
        selection = select_runs(
            client, args.experiment, args.parent_run, args.filter, say=_say_on_stderr
        )
        name = f"sweep-{args.parent_run[:8]}" if args.parent_run else selection.experiment
        out_dir = out_dir or _output_folder(Path(REPORTS_DIR) / name.replace("/", "_"))
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
