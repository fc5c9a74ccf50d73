"""The report of a real multirun of the training entry point, logged to its parent run."""

from __future__ import annotations

import csv
import html

import pytest
from helpers.compose import FAST
from helpers.workspace import Workspace

from experiments.diagnostics import verdict
from experiments.processes import child_environment
from experiments.report import build as report
from experiments.report.groups import COMPARISON_COLUMNS, GROUP_COLUMNS


@pytest.mark.xdist_group("small_sweep")
@pytest.mark.slow
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
    assert {
        "report/report.html",
        "report/learning_curves.png",
        "report/runs.csv",
        "report/groups.csv",
        "report/comparisons.csv",
    } <= logged
    # One seed per configuration: no comparison, no curves of means over seeds.
    assert "One seed per configuration: no comparison is possible" in text
    assert "report/group_curves.png" not in logged
    if any(k.startswith("grad/") for r in runs for k in r.data.metrics):
        assert "report/depth_profiles.png" in logged
    else:
        # Runs without gradient diagnostics: the page says so instead of drawing empty axes.
        assert "No run carries gradient diagnostics" in text
        assert "report/depth_profiles.png" not in logged


@pytest.mark.xdist_group("small_sweep")
@pytest.mark.slow
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


def read_csv(path):
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def seeded_sweep(tmp_path_factory) -> Workspace:
    """Two configurations (relu, tanh) over two seeds: four jobs of one epoch, one parent."""
    workspace = Workspace(tmp_path_factory.mktemp("seeded_sweep"))
    sweep = ["-m", *FAST, "training.epochs=1", "activation=relu,tanh", "training.seed=1,2"]
    assert workspace.train(*sweep) == 0
    return workspace


@pytest.mark.slow
def test_two_configurations_over_two_seeds_are_grouped_judged_and_compared(seeded_sweep):
    """The sweep's runs: one group_hash per configuration, a verdict on every run; its
    report: groups.csv, comparisons.csv and the words say the same, and all of it is
    logged to the sweep's parent run."""
    runs = [r for r in seeded_sweep.runs() if r.data.tags.get("sweep") != "true"]
    (parent,) = [r for r in seeded_sweep.runs() if r.data.tags.get("sweep") == "true"]
    logged = {f.path for f in seeded_sweep.client().list_artifacts(parent.info.run_id, "report")}
    assert {"report/groups.csv", "report/comparisons.csv", "report/group_curves.png"} <= logged
    by_activation: dict[str, set[str]] = {}
    for run in runs:
        by_activation.setdefault(run.data.params["activation.name"], set()).add(
            run.data.tags["group_hash"]
        )
        assert run.data.tags["gradient_health"] in verdict.SEVERITY
        assert run.data.tags["gradient_health_reason"]
    assert len(by_activation["relu"]) == len(by_activation["tanh"]) == 1
    assert by_activation["relu"] != by_activation["tanh"]
    # config_hash still tells the seeds apart (resume skips only an identical config).
    assert len({r.data.tags["config_hash"] for r in runs}) == 4

    folder = seeded_sweep.folder / "multirun" / "report"
    groups = read_csv(folder / "groups.csv")
    assert list(groups[0]) == list(GROUP_COLUMNS)
    assert {(g["group"], g["metric"], g["n"]) for g in groups} == {
        (a, m, "2") for a in ("relu", "tanh") for m in ("val_accuracy", "test_accuracy")
    }
    for g in groups:
        values = [
            r.data.metrics[g["metric"]]
            for r in runs
            if r.data.params["activation.name"] == g["group"]
        ]
        assert float(g["mean"]) == pytest.approx(sum(values) / 2)
        assert float(g["ci_low"]) <= float(g["mean"]) <= float(g["ci_high"])

    comparisons = read_csv(folder / "comparisons.csv")
    assert list(comparisons[0]) == list(COMPARISON_COLUMNS)
    assert {(c["a"], c["b"], c["factor"], c["metric"]) for c in comparisons} == {
        ("relu", "tanh", "activation", m) for m in ("val_accuracy", "test_accuracy")
    }
    page = (folder / "report.html").read_text()
    text = html.unescape(page[: page.index("</ul>")])
    assert (
        "2 configurations (runs that differ only by their seed, tag group_hash), 2 runs each"
        in text
    )
    for c in comparisons:
        diff = float(c["diff"])
        if c["significant"] == "True":
            winner, loser = ("relu", "tanh") if diff > 0 else ("tanh", "relu")
            assert f"{winner} beats {loser} on {c['metric']} by {abs(diff):.4f}" in text
        else:
            assert f"relu vs tanh on {c['metric']}: no detectable difference at n = 2 vs 2" in text
            assert f"difference {diff:.4f}" in text
    assert text.count(" beats ") == sum(c["significant"] == "True" for c in comparisons)
    assert "Gradient health (tag gradient_health), runs: " in text


@pytest.mark.xdist_group("small_sweep")
def test_the_report_says_what_it_reads_and_how_far_it_is(small_sweep, monkeypatch):
    from experiments.report import data

    monkeypatch.setattr(data, "SAY_EVERY", 1)
    said: list[str] = []
    data.select_runs(small_sweep.client(), "gradient-lab", say=said.append)
    assert said == [
        f"reading 2 runs of experiment 'gradient-lab' in {small_sweep.uri}",
        "read 1 of 2 runs",
    ]
