"""The report of an Optuna search: the best configurations with their intervals over
seeds, "best" only where the seeds show it, Optuna's figures and the Pareto front from
the sweep folder. Runs are made here (RunSummary objects, or runs written straight into
a store for the sweep's own path): no training, no Optuna."""

from __future__ import annotations

import csv
import re

import pytest
import yaml
from helpers.workspace import copy_empty_store

from experiments.core import names
from experiments.report import build as report
from experiments.report.data import RunSummary, Selection
from experiments.report.search import read_search
from experiments.report.search_page import search_section
from experiments.tracking.recorder import RunRecorder
from experiments.tracking.store import artifact_location, ensure_experiment

pytestmark = pytest.mark.xdist_group("report.test_search_report")
SEEDS = (42, 43, 44)
# A seed's deviation, different per trial, so differences paired by seed still spread.
NOISE = {42: -0.004, 43: 0.001, 44: 0.003}
# Not a real image: the page embeds the file's bytes as they are.
PNG = b"\x89PNG\r\n\x1a\n-a-figure-"


def trial_runs(folder, means: dict[int, float], seeds=SEEDS, **metrics) -> list[RunSummary]:
    """Trial k's runs, one per seed, val_accuracy mean[k] plus the seed's noise; each run's
    output folder inside `folder`, the sweep folder."""
    runs = []
    for trial, mean in means.items():
        for k, seed in enumerate(seeds):
            job = len(runs)
            runs.append(
                RunSummary(
                    run_id=f"run-{trial}-{seed}",
                    name=f"relu-he_normal optimizer.learning_rate={0.01 * (trial + 1)}",
                    status="FINISHED",
                    choices={"activation": "relu", "init": "he_normal"},
                    params={
                        "optimizer.learning_rate": str(0.01 * (trial + 1)),
                        "training.seed": str(seed),
                    },
                    metrics={
                        "val_accuracy": mean + NOISE[seed] * (1 + trial % 3) / (1 + k % 2),
                        "test_accuracy": mean - 0.01,
                        **metrics,
                    },
                    tags={
                        names.OPTUNA_STUDY_TAG: "gradient-lab",
                        names.OPTUNA_TRIAL_TAG: str(trial),
                        names.GROUP_TAG: f"group-{trial}",
                        names.OUTPUT_DIR_TAG: str(folder / str(job)),
                    },
                )
            )
    return runs


def test_a_clear_winner_over_seeds_is_called_best(tmp_path):
    runs = trial_runs(tmp_path, {0: 0.80, 1: 0.82, 2: 0.90, 3: 0.78, 4: 0.81, 5: 0.79})
    search = read_search(runs)
    assert search is not None and search.claimed
    assert [t.number for t in search.ranked] == [2, 1, 4, 0, 5, 3]
    # Trial 2 against each of the 5 others, adjusted together.
    assert len(search.comparisons) == 5 and all(c.significant for c in search.comparisons)
    said = " ".join(search.lines)
    assert "Trial 2 is the best on val_accuracy" in said
    assert "the runner-up, trial 1, by 0.0" in said and "Holm-adjusted" in said
    html = search_section(search, {})
    # The top 5 of 6 trials, best first, the first marked; each with its interval.
    assert re.findall(r'data-trial="(\d+)"', html) == ["2", "1", "4", "0", "5"]
    assert '<tr class="best" data-trial="2">' in html
    assert html.split('<table class="search">')[1].count("95% CI") == 5
    assert "optimizer.learning_rate" in html and "<td>3</td>" in html  # 3 seeds each


def test_a_close_pair_is_not_called_best_and_the_p_value_is_given(tmp_path):
    runs = trial_runs(tmp_path, {0: 0.80, 1: 0.851, 2: 0.850})
    search = read_search(runs)
    assert search is not None and not search.claimed
    said = " ".join(search.lines)
    assert "is the best" not in said
    assert "The top trials cannot be told apart on val_accuracy: trial 1, trial 2" in said
    assert re.search(r"against the runner-up, trial 2: difference [-0-9.]+ .*p = [0-9.e-]+", said)
    assert '<tr class="best"' not in search_section(search, {})


def test_one_seed_per_trial_has_no_interval_and_makes_no_claim(tmp_path):
    runs = trial_runs(tmp_path, {0: 0.80, 1: 0.85, 2: 0.83}, seeds=(42,))
    search = read_search(runs)
    assert search is not None and not search.claimed and not search.comparisons
    said = " ".join(search.lines)
    assert "One seed per trial: no interval" in said
    assert "Trial 1's val_accuracy" in said and "highest value the search found" in said
    assert "not a claim" in said
    assert "1 seed, no interval" in search_section(search, {})


def test_pruned_and_failed_trials_are_counted_not_ranked(tmp_path):
    runs = trial_runs(tmp_path, {0: 0.80, 1: 0.85, 2: 0.83, 3: 0.90})
    pruned = [r for r in runs if r.tags[names.OPTUNA_TRIAL_TAG] == "3"]
    for run in pruned:
        run.status = "KILLED"
        run.tags[names.TRIAL_STATE_TAG] = names.TRIAL_PRUNED
    runs[0].status = "FAILED"  # one seed of trial 0: the trial fails, as in the study
    search = read_search(runs)
    assert [t.number for t in search.ranked] == [1, 2]
    assert "4 trials, 2 complete (2 pruned or failed, 1 of them pruned)" in search.lines[0]


def test_runs_of_no_search_get_no_section(tmp_path):
    runs = trial_runs(tmp_path, {0: 0.8})
    for run in runs:
        del run.tags[names.OPTUNA_TRIAL_TAG]
    assert read_search(runs) is None


def write_sweep_folder(folder, figures, results) -> None:
    (folder / names.SEARCH_FOLDER).mkdir(parents=True)
    for name in figures:
        (folder / names.SEARCH_FOLDER / f"{name}.png").write_bytes(PNG + name.encode())
    (folder / names.SEARCH_RESULTS_FILE).write_text(yaml.safe_dump(results))


def test_the_page_embeds_the_searchs_figures_and_lists_the_pareto_front(tmp_path):
    sweep = tmp_path / "multirun"
    objectives = ["val_accuracy", "epoch_seconds"]
    runs = trial_runs(sweep, {0: 0.80, 1: 0.85, 2: 0.83}, epoch_seconds=2.0)
    front = [
        {"trial": 1, "params": {"optimizer.learning_rate": 0.02}, "values": {"val_accuracy": 0.85, "epoch_seconds": 2.0}},
        {"trial": 2, "params": {"optimizer.learning_rate": 0.03}, "values": {"val_accuracy": 0.83, "epoch_seconds": 1.5}},
    ]  # fmt: skip
    figures = ["pareto_front", "optimization_history_val_accuracy", "param_importances_val_accuracy",
               "optimization_history_epoch_seconds"]  # fmt: skip
    write_sweep_folder(
        sweep,
        figures,
        {"objectives": objectives, "direction": ["maximize", "minimize"], "pareto_front": front},
    )
    selection = Selection(runs, "sweep x", "gradient-lab", "parent")
    built = report.build_report(selection, sweep / "report", title="Sweep <search>")
    page = built.html.read_text()
    # Copied beside the page (logged with it to the parent run) and embedded, in order.
    for name in figures:
        assert (sweep / "report" / f"search_{name}.png").read_bytes() == PNG + name.encode()
    embedded = re.findall(r'data-file="(search_[^"]+)\.png"', page)
    assert embedded == [
        "search_pareto_front",
        "search_optimization_history_val_accuracy",
        "search_optimization_history_epoch_seconds",
        "search_param_importances_val_accuracy",
    ]
    assert "For epoch_seconds: The search&#x27;s history" in page
    # The Search section comes before the figures of every run.
    assert page.index('<h2 id="search">') < page.index('id="learning_curves"')
    front_rows = page.split('<table class="front">')[1].split("</table>")[0]
    assert re.findall(r'data-trial="(\d+)"', front_rows) == ["1", "2"]
    assert "the Pareto front, the trials no other beats on every objective, is trials 1, 2" in page
    # Each objective's mean and interval in the table of best configurations.
    best_head = page.split('<table class="search">')[1].split("</thead>")[0]
    assert "val_accuracy" in best_head and "epoch_seconds" in best_head
    assert built.search is not None and built.search.lines[0] in built.lines
    with (sweep / "report" / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    assert rows[1]["optimizer.learning_rate"] == "0.02" and rows[1]["seeds"] == "3"
    assert float(rows[1]["val_accuracy_told"]) == pytest.approx(float(rows[1]["val_accuracy_mean"]))


def test_without_the_sweep_folder_the_page_says_so(tmp_path):
    runs = trial_runs(tmp_path / "gone", {0: 0.80, 1: 0.85})
    built = report.build_report(Selection(runs, "sweep x", "e"), tmp_path / "report")
    page = built.html.read_text()
    assert "No figures of the search" in page
    assert f"No {names.SEARCH_RESULTS_FILE} beside the trials" in page


def test_a_sweeps_report_on_its_parent_run_has_the_search(tmp_path):
    """The sweep's own path: trials read back from MLflow by their tags, the sweep folder
    found above their output folders, the figures logged with the page."""
    from mlflow.tracking import MlflowClient

    uri = copy_empty_store(tmp_path)
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, "gradient-lab", artifact_location(uri, tmp_path))
    parent = RunRecorder.start(client, experiment_id, "search", {names.SWEEP_TAG: "true"})
    sweep = tmp_path / "multirun"
    for run in trial_runs(sweep, {0: 0.80, 1: 0.90, 2: 0.82}):
        child = RunRecorder.start(client, experiment_id, run.name, run.tags, parent.run_id)
        child.log_params(run.params)
        child.log_metrics(run.metrics)
        child.end("FINISHED")
    parent.end("FINISHED")
    write_sweep_folder(
        sweep, ["optimization_history", "param_importances"], {"objectives": ["val_accuracy"]}
    )
    html = report.log_sweep_report(client, parent.run_id, sweep / "report")
    assert html is not None
    page = html.read_text()
    assert "Trial 1 is the best on val_accuracy" in page
    logged = {f.path for f in client.list_artifacts(parent.run_id, "report")}
    assert {
        "report/search_optimization_history.png",
        "report/search_param_importances.png",
        "report/trials.csv",
    } <= logged
