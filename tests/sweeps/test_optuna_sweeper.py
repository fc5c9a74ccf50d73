"""The project's Optuna sweeper (src/hydra_plugins/gradlab_optuna_sweeper): Hydra's sweep
syntax as Optuna distributions, the trial a job learns from its config, and one real
search in-process (basic launcher) where one trial learns, one explodes and one is pruned."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from helpers.compose import compose
from helpers.sweeps import OPTUNA, TINY, children, optuna_study, search_params, sweep_parent
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from experiments.sweeps.objective import WORST_SCORE
from hydra_plugins.gradlab_optuna_sweeper import _space, _storage
from hydra_plugins.gradlab_optuna_sweeper._impl import counted
from hydra_plugins.gradlab_optuna_sweeper._storage import quiet
from hydra_plugins.gradlab_optuna_sweeper.job import TRIAL_ENV, JobTrial, env_override


def test_the_sweep_syntax_becomes_optuna_distributions():
    space, fixed = _space.parse(
        [
            "lr=tag(log, interval(1e-4, 1e-1))",
            "threshold=interval(0.5, 2)",
            "units=interval(16, 64)",
            "init=choice(he_normal, glorot_uniform)",
            "seed=range(0, 10, 3)",
            "rate=range(0.5, 2.0, 0.5)",
            "epochs=3",
        ]
    )
    assert space["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["threshold"] == FloatDistribution(0.5, 2.0)
    assert space["units"] == FloatDistribution(16.0, 64.0)  # Hydra's intervals are floats
    assert space["init"] == CategoricalDistribution(["he_normal", "glorot_uniform"])
    # Hydra's range leaves out its stop, as the basic sweeper does: 0, 3, 6, 9.
    assert space["seed"] == IntDistribution(0, 9, step=3)
    assert space["rate"] == FloatDistribution(0.5, 1.5, step=0.5)
    assert fixed == {"epochs": "3"}
    assert _space.grid({"seed": space["seed"], "init": space["init"]}) == {
        "seed": [0, 3, 6, 9],
        "init": ["he_normal", "glorot_uniform"],
    }
    with pytest.raises(_space.SearchSpaceError, match="lr: the grid sampler needs choice"):
        _space.grid({"lr": space["lr"]})


def test_a_database_url_reaches_the_job_through_its_config():
    url = "postgresql+psycopg://user:p'w@db.example.org:5432/optuna"
    (override,) = OverridesParser.create().parse_overrides([env_override("X", url)])
    assert override.value() == url
    job = compose([env_override(TRIAL_ENV, 7)], return_hydra_config=True).hydra.job
    assert job.env_set[TRIAL_ENV] == "7"
    found = JobTrial.from_env_set(
        {**job.env_set, "GRADLAB_OPTUNA_STORAGE": url, "GRADLAB_OPTUNA_STUDY": "s"}
    )
    assert found == JobTrial(url, "s", 7)
    assert JobTrial.from_env_set(job.env_set) is None  # no study named: not a trial


def test_a_retried_trial_counts_once():
    import optuna

    storage = optuna.storages.RDBStorage("sqlite:///:memory:")
    study = optuna.create_study(storage=storage)
    lost = study.ask()
    study.tell(lost, state=optuna.trial.TrialState.FAIL)
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
    retry(study, study.trials[0])
    study.tell(study.ask(), 1.0)  # the retry
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # a failure of its own
    assert len(study.trials) == 3 and counted(study.trials) == 2


def test_one_filter_quiets_what_optuna_says_of_the_sweepers_deliberate_use():
    """Heartbeats outside study.optimize are on purpose: their experimental and "Heartbeat
    of storage" warnings are silenced, by one filter in the plugin; other warnings pass
    unless named."""
    import optuna

    said = [
        ("heartbeats are experimental", optuna.exceptions.ExperimentalWarning),
        ("Heartbeat of storage is supposed to be used with Study.optimize.", UserWarning),
        ("anything else", UserWarning),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet():
            for message, category in said:
                warnings.warn(message, category, stacklevel=1)
        with quiet(UserWarning):
            warnings.warn("a named category", stacklevel=1)
    assert [str(w.message) for w in caught] == ["anything else"]
    plugin = Path(_storage.__file__).parent
    filtering = [
        p.name
        for p in sorted(plugin.glob("*.py"))
        if re.search(r"catch_warnings|simplefilter|filterwarnings", p.read_text())
    ]
    assert filtering == ["_storage.py"]


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """Three trials on a grid, in this order (the grid sampler's seed 5): lr 0.05 learns,
    lr 1e12 explodes, lr 1e-9 trails the first and the median pruner stops it."""
    from helpers.workspace import Workspace

    workspace = Workspace(tmp_path_factory.mktemp("optuna_search"))
    code = workspace.train(
        *OPTUNA,
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.sampler.seed=5",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.max_failure_rate=1.0",
        search_params(**{"optimizer.learning_rate": "choice(0.05, 1e12, 1e-9)"}),
        "clipping=value",
        "clipping.threshold=1e30",
        "diagnostics.plots=false",
        *(o for o in TINY if not o.startswith("optimizer.learning_rate=")),
    )
    assert code == 0
    return workspace


@pytest.mark.slow
@pytest.mark.xdist_group("optuna_search")
def test_an_exploding_trial_scores_the_worst_and_a_trailing_one_is_pruned(search):
    import yaml

    client = search.client()
    parent = sweep_parent(client)
    runs = {r.data.params["optimizer.learning_rate"]: r for r in children(client, parent)}
    learned, exploded, trailing = runs["0.05"], runs["1000000000000.0"], runs["1e-09"]
    assert learned.info.status == "FINISHED"
    assert exploded.info.status == "FAILED"
    assert "non-finite" in exploded.data.tags["failure_reason"]
    assert trailing.info.status == "KILLED"
    assert trailing.data.tags["trial_state"] == "pruned"
    # Stopped before its last epoch (which of the first two depends on how close the
    # learning trial's first epoch came to chance).
    pruned_epoch = int(trailing.data.tags["pruned_epoch"])
    assert pruned_epoch < 2
    assert "MedianPruner" in trailing.data.tags["failure_reason"]
    # Judged like any run (its diagnostics ran until the pruner stopped it).
    assert trailing.data.tags["gradient_health"] not in ("", "unknown")
    epochs = search.client().get_metric_history(trailing.info.run_id, "loss")
    assert len(epochs) == pruned_epoch + 1
    counts = {k: v for k, v in parent.data.metrics.items() if k.startswith("children_")}
    assert counts | {"children_skipped": 0} == {
        "children_finished": 1,
        "children_failed": 1,
        "children_killed": 0,
        "children_pruned": 1,
        "children_running": 0,
        "children_skipped": 0,
    }

    study = optuna_study(f"sqlite:///{search.folder / 'optuna.db'}")
    states = {t.params["optimizer.learning_rate"]: t.state.name for t in study.trials}
    assert states == {0.05: "COMPLETE", 1e12: "COMPLETE", 1e-9: "PRUNED"}
    by_lr = {t.params["optimizer.learning_rate"]: t for t in study.trials}
    assert by_lr[1e12].value == WORST_SCORE
    assert by_lr[0.05].value == pytest.approx(learned.data.metrics["val_accuracy"])
    # Every epoch's val_accuracy went to the study, as MLflow has it.
    history = client.get_metric_history(learned.info.run_id, "val_accuracy")
    assert by_lr[0.05].intermediate_values == pytest.approx({m.step: m.value for m in history})

    # The parent: best trial, its value and params, and Optuna's figures.
    assert parent.data.metrics["best_value"] == pytest.approx(by_lr[0.05].value)
    assert parent.data.tags["best.optimizer.learning_rate"] == "0.05"
    assert parent.data.tags["best_trial"] == str(by_lr[0.05].number)
    assert parent.data.tags["optuna_study"] == "gradient-lab"
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "search")}
    assert {
        "search/optimization_results.yaml",
        "search/optimization_history.png",
        "search/param_importances.png",
        "search/parallel_coordinate.png",
    } <= logged
    results = yaml.safe_load((search.folder / "multirun" / "optimization_results.yaml").read_text())
    assert results["trials"] == {"complete": 2, "pruned": 1}


@pytest.mark.slow
@pytest.mark.xdist_group("optuna_search")
def test_a_finished_search_runs_nothing_more(search):
    """n_trials is the study's total: the same command again asks for no trial."""
    runs_before = len(search.runs())
    code = search.train(
        *OPTUNA,
        "hydra/sweeper/sampler=grid",
        search_params(**{"optimizer.learning_rate": "choice(0.05, 1e12, 1e-9)"}),
        "clipping=value",
        "clipping.threshold=1e30",
        *(o for o in TINY if not o.startswith("optimizer.learning_rate=")),
    )
    assert code == 0
    runs = search.runs()
    assert len(runs) == runs_before + 1  # a second parent, no child
    study = optuna_study(f"sqlite:///{search.folder / 'optuna.db'}")
    assert len(study.trials) == 3
