"""The report of a real multirun of the training entry point, logged to its parent run."""

from __future__ import annotations

import pytest

from experiments.processes import child_environment
from experiments.report import build as report


@pytest.mark.xdist_group("small_sweep")
def test_every_multirun_ends_with_its_report_on_the_parent_run(small_sweep):
    workspace = small_sweep
    runs = workspace.runs()
    (parent,) = [r for r in runs if r.data.tags.get("sweep") == "true"]
    children = {r.info.run_id for r in runs if r.info.run_id != parent.info.run_id}
    assert len(children) == 2

    client = workspace.client()
    # The sweep's output folder keeps the page built at the end of the multirun.
    html = workspace.folder / "multirun" / "report" / "report.html"
    assert html.is_file()
    text = html.read_text()
    for run_id in children:
        assert f'data-run-id="{run_id}"' in text
    assert "They differ in activation (relu, tanh)" in text
    logged = {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/learning_curves.png", "report/runs.csv"} <= logged
    if any(k.startswith("grad/") for r in runs for k in r.data.metrics):
        assert "report/depth_profiles.png" in logged
    else:
        # Runs without gradient diagnostics: the page says so instead of drawing empty axes.
        assert "No run carries gradient diagnostics" in text
        assert "report/depth_profiles.png" not in logged


@pytest.mark.xdist_group("small_sweep")
def test_log_sweep_report_rebuilds_a_sweeps_report_on_demand(small_sweep, tmp_path):
    (parent,) = [r for r in small_sweep.runs() if r.data.tags.get("sweep") == "true"]
    html = report.log_sweep_report(small_sweep.client(), parent.info.run_id, tmp_path / "again")
    assert (
        html == tmp_path / "again" / "report.html" and "activation (relu, tanh)" in html.read_text()
    )


@pytest.mark.slow
def test_command_imports_no_tensorflow_and_fails_in_one_line(workspace):
    """`python -m experiments.report` as a user runs it: a wrong experiment name is one
    line on stderr and exit code 1, and TensorFlow is never imported."""
    import subprocess
    import sys

    workspace.client().create_experiment("other")
    probe = (
        "import sys, runpy; sys.argv = ['report', '--experiment', 'gradient-lab'];"
        "code = 0\n"
        "try:\n    runpy.run_module('experiments.report', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print('tensorflow' in sys.modules, code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=workspace.folder,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["False", "1"], done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"error: --experiment 'gradient-lab': no such experiment in "
        f"{workspace.uri} (known: Default, other)"
    ]
