"""Issue 21, searching as a scientist would: the upstream sweep syntax (integer intervals,
a custom search space), each trial over several seeds, several objectives. In-process on
the sweeper's parts, with a launcher that only records what it is asked; one real search
end to end (slow)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import optuna
import pytest
from helpers.sweeps import OPTUNA, children, optuna_study, search_params, sweep_parent
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState
from scipy import stats

from hydra_plugins.gradlab_optuna_sweeper import _seeds, _space
from hydra_plugins.gradlab_optuna_sweeper._impl import (
    RESULTS_FILE,
    StudySweep,
    SweeperConfigError,
)
from hydra_plugins.gradlab_optuna_sweeper._storage import open_storage

pytestmark = pytest.mark.filterwarnings(
    "ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage:UserWarning"
)


# --- The sweep syntax -------------------------------------------------------------------


def test_an_int_interval_is_an_integer_distribution_on_a_log_scale_where_tagged():
    space, _ = _space.parse(
        [
            "units=int(interval(16, 64))",
            "depth=tag(log, int(interval(1, 5)))",
            "width=int(tag(log, interval(2, 32)))",
            "rate=interval(1, 5)",
            "seed=range(0, 10, 3)",
        ]
    )
    assert space["units"] == IntDistribution(16, 64)
    assert space["depth"] == IntDistribution(1, 5, log=True)
    assert space["width"] == IntDistribution(2, 32, log=True)
    assert space["rate"] == FloatDistribution(1.0, 5.0)  # without int(): floats, as Hydra's
    assert space["seed"] == IntDistribution(0, 9, step=3)  # range's stop left out


def test_a_suggested_int_is_an_int_in_the_jobs_override():
    space, fixed = _space.parse(["depth=tag(log, int(interval(1, 5)))", "epochs=2"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        params = _space.suggest(study.ask(), space, fixed)
        assert type(params["depth"]) is int and 1 <= params["depth"] <= 5
        assert "." not in f"depth={params['depth']}"
        assert params["epochs"] == "2"


def test_a_log_interval_that_reaches_zero_is_one_line_naming_the_key():
    with pytest.raises(_space.SearchSpaceError, match=r"^depth: .*low"):
        _space.parse(["depth=tag(log, int(interval(0, 5)))"])


def conditional(cfg, trial):
    """A custom search space: a momentum only for SGD, and a value fixed by the draw."""
    if trial.params["optimizer"] == "sgd":
        trial.suggest_float("optimizer.momentum", 0.5, 0.99)
    return {"training.epochs": 2 if trial.params["optimizer"] == "sgd" else 1}


def test_a_custom_search_space_adds_conditional_and_fixed_values():
    space, fixed = _space.parse(["optimizer=choice(sgd, adam)", "data.train_size=256"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        params = _space.suggest(trial, space, fixed, conditional, cfg=None)
        sgd = params["optimizer"] == "sgd"
        seen.add(sgd)
        assert ("optimizer.momentum" in params) is sgd
        assert params["training.epochs"] == (2 if sgd else 1)
        assert trial.user_attrs["training.epochs"] == params["training.epochs"]
        assert params["data.train_size"] == "256"
    assert seen == {True, False}
    with pytest.raises(_space.SearchSpaceError, match="^training.epochs: set both"):
        _space.suggest(study.ask(), space, {"training.epochs": "3"}, conditional)


# --- Settings ---------------------------------------------------------------------------


def sweeper(**settings) -> StudySweep:
    defaults = dict(
        sampler=None,
        pruner=None,
        direction="maximize",
        storage=None,
        study_name="s",
        n_trials=2,
        n_jobs=1,
        max_failure_rate=1.0,
        heartbeat_interval=10,
        max_retry=3,
        figures=False,
        params=None,
    )
    return StudySweep(**(defaults | settings))


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"seeds_per_trial": 0}, "hydra.sweeper.seeds_per_trial=0 is not allowed: must be >= 1"),
        (
            {"seed_statistic": "median", "seeds_per_trial": 3},
            "hydra.sweeper.seed_statistic=median is not allowed: must be mean or lower_bound",
        ),
        (
            {"seed_statistic": "lower_bound"},
            "hydra.sweeper.seed_statistic=lower_bound is not allowed with "
            "hydra.sweeper.seeds_per_trial=1: an interval needs >= 2 seeds",
        ),
        (
            {"objectives": ["val_accuracy", "epoch_seconds"]},
            "hydra.sweeper.direction=[maximize] is not allowed with "
            "hydra.sweeper.objectives=[val_accuracy,epoch_seconds]: give one direction per "
            "objective",
        ),
        (
            {"direction": "up"},
            "hydra.sweeper.direction=up is not allowed: must be minimize or maximize",
        ),
        ({"objectives": []}, "hydra.sweeper.objectives=[] is not allowed: must name one or more"),
        (
            {"custom_search_space": "no_such_module.configure"},
            "hydra.sweeper.custom_search_space=no_such_module.configure is not allowed: ",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_key_and_what_is_allowed(settings, said):
    with pytest.raises(SweeperConfigError) as raised:
        sweeper(**settings)
    assert str(raised.value).startswith(said)
    assert "\n" not in str(raised.value)


# --- Seeds per trial --------------------------------------------------------------------


def test_the_interval_over_seeds_is_the_t_interval_and_lower_bound_the_losing_end():
    values = [0.80, 0.84, 0.83]
    summary = _seeds.Summary.of(values)
    mean, sem = sum(values) / 3, stats.sem(values)
    low, high = stats.t.interval(0.95, 2, loc=mean, scale=sem)
    assert (summary.n, summary.mean) == (3, pytest.approx(mean))
    assert (summary.low, summary.high) == (pytest.approx(low), pytest.approx(high))
    assert summary.value("mean", "maximize") == pytest.approx(mean)
    assert summary.value("lower_bound", "maximize") == pytest.approx(low)
    assert summary.value("lower_bound", "minimize") == pytest.approx(high)
    assert _seeds.Summary.of([0.5]) == _seeds.Summary(1, 0.5, 0.0, 0.5, 0.5)


class Returned:
    """A job's return as a launcher hands it back (hydra.core.utils.JobReturn)."""

    def __init__(self, value):
        self.value = value

    @property
    def return_value(self):
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class Recording:
    """A launcher that runs nothing: it keeps each batch of overrides and answers with
    `answer(overrides)`."""

    def __init__(self, answer):
        self.answer = answer
        self.batches: list[list[tuple[str, ...]]] = []

    def launch(self, overrides, initial_job_idx):
        self.batches.append([tuple(o) for o in overrides])
        return [Returned(self.answer(o)) for o in overrides]


def seeded(o: tuple[str, ...]) -> int:
    return int(next(x for x in o if x.startswith("training.seed=")).split("=")[1])


def batch(tmp_path, answer, **settings):
    """One batch of `n_jobs` trials through a recording launcher, as `sweep` runs it."""
    search = sweeper(**settings)
    search.config = SimpleNamespace()
    search.launcher = Recording(answer)
    search.storage_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(search.storage_url, heartbeat_interval=10)
    study = optuna.create_study(
        storage=storage, directions=search.directions, sampler=optuna.samplers.RandomSampler(0)
    )
    space, fixed = _space.parse(["lr=tag(log, interval(1e-3, 1e-1))", "training.seed=7"])
    search._seed_space(space, fixed)
    search._run_batch(study, storage, space, fixed, search.n_jobs)
    return search, study


def test_each_trial_runs_once_per_seed_in_one_batch_and_is_told_their_statistic(tmp_path):
    """Two trials of 3 seeds: six jobs in one launch, seeds 7, 8, 9 from the fixed seed,
    each trial's jobs sharing its number; the trial told the lower bound over them."""
    search, study = batch(
        tmp_path,
        lambda o: 0.80 + 0.01 * (seeded(o) - 7),
        seeds_per_trial=3,
        seed_statistic="lower_bound",
        n_jobs=2,
    )
    (launched,) = search.launcher.batches
    assert [seeded(o) for o in launched] == [7, 8, 9, 7, 8, 9]
    trial_of = [next(x for x in o if "GRADLAB_OPTUNA_TRIAL" in x) for o in launched]
    assert len(set(trial_of[:3])) == 1 and len(set(trial_of[3:])) == 1
    assert trial_of[0] != trial_of[3]
    summary = _seeds.Summary.of([0.80, 0.81, 0.82])
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE
        assert trial.value == pytest.approx(summary.low)
        attrs = trial.user_attrs
        assert attrs["n"] == 3 and attrs["seeds"] == [7, 8, 9]
        assert attrs["val_accuracy.mean"] == pytest.approx(0.81)
        assert attrs["val_accuracy.std"] == pytest.approx(0.01)
        assert attrs["val_accuracy.interval"] == pytest.approx([summary.low, summary.high])
        assert attrs["val_accuracy.values"] == pytest.approx([0.80, 0.81, 0.82])


def test_one_seed_a_trial_launches_as_before(tmp_path):
    search, study = batch(tmp_path, lambda o: 0.5)
    (launched,) = search.launcher.batches
    assert len(launched) == 1 and "training.seed=7" in launched[0]
    assert study.trials[0].value == 0.5 and study.trials[0].user_attrs == {}


def test_a_trial_whose_seed_failed_fails_and_names_the_seed(tmp_path):
    def answer(o):
        return RuntimeError("out of data") if seeded(o) == 8 else 0.8

    _, study = batch(tmp_path, answer, seeds_per_trial=3)
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["failed_seeds"] == [8]


def test_a_seed_searched_and_repeated_is_refused():
    search = sweeper(seeds_per_trial=2)
    space, fixed = _space.parse(["training.seed=range(0, 4)"])
    with pytest.raises(SweeperConfigError, match="training.seed cannot also be searched"):
        search._seed_space(space, fixed)


# --- Several objectives -----------------------------------------------------------------


def test_several_objectives_tell_each_value_and_list_the_pareto_front(tmp_path):
    """Two objectives (accuracy up, time down) over 2 seeds: each trial told both means;
    the results file lists the front with its seeds' statistics, and the front's figure."""
    import yaml

    def answer(o):
        lr = float(next(x for x in o if x.startswith("lr=")).split("=")[1])
        return {"val_accuracy": 0.9 - lr, "epoch_seconds": 1.0 / lr + seeded(o)}

    search, study = batch(
        tmp_path,
        answer,
        objectives=["val_accuracy", "epoch_seconds"],
        direction=["maximize", "minimize"],
        seeds_per_trial=2,
        n_jobs=4,
        figures=True,
    )
    for trial in study.trials:
        lr = trial.params["lr"]
        assert trial.values == pytest.approx([0.9 - lr, 1.0 / lr + 7.5])
    search.sweep_dir = tmp_path / "sweep"
    search._write_results(study, 4)
    results = yaml.safe_load((search.sweep_dir / RESULTS_FILE).read_text())
    assert results["direction"] == ["maximize", "minimize"]
    assert "best_value" not in results
    front = {t["trial"] for t in results["pareto_front"]}
    assert front == {t.number for t in study.best_trials} and len(front) == 4  # all trade off
    entry = results["pareto_front"][0]
    assert set(entry["values"]) == {"val_accuracy", "epoch_seconds"}
    assert entry["seeds"]["n"] == 2
    assert (search.sweep_dir / "search" / "pareto_front.png").is_file()


def test_a_job_that_returns_one_value_for_two_objectives_fails_its_trial(tmp_path):
    _, study = batch(
        tmp_path,
        lambda o: 0.5,
        objectives=["val_accuracy", "epoch_seconds"],
        direction=["maximize", "minimize"],
    )
    assert study.trials[0].state == TrialState.FAIL


def test_a_run_that_exploded_gives_no_other_objective():
    from experiments.sweeps.objective import WORST_SCORE, objectives

    final = {"epoch_seconds": 0.2}
    wanted = ["val_accuracy", "epoch_seconds"]
    assert objectives(0.8, final, wanted) == {"val_accuracy": 0.8, "epoch_seconds": 0.2}
    assert objectives(math.nan, final, wanted) == {
        "val_accuracy": WORST_SCORE,
        "epoch_seconds": None,
    }


@pytest.mark.parametrize(
    "setting", [{"seeds_per_trial": 2}, {"objectives": ["val_accuracy", "epoch_seconds"]}]
)
def test_a_job_reports_to_no_pruner_over_seeds_or_other_objectives(tmp_path, setting):
    from experiments.runs.job import Job
    from hydra_plugins.gradlab_optuna_sweeper.job import JobTrial

    job = Job(tmp_path, tmp_path, trial=JobTrial("sqlite://", "s", 0), **setting)
    assert job.trial_reporter() is None


def test_a_study_made_for_other_objectives_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = sweeper(storage=url)
    search.storage_url = url
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    search._check_study(study)  # new: takes the search's objective names
    assert study.metric_names == ["val_accuracy"]
    other = sweeper(objectives=["test_accuracy"], storage=url)
    other.storage_url = url
    with pytest.raises(SweeperConfigError, match=r"created for objectives \[val_accuracy\]"):
        other._check_study(optuna.load_study(study_name="s", storage=url))


# --- End to end -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_search_over_seeds_and_two_objectives_end_to_end(workspace):
    """2 trials x 2 seeds of a tiny net, searching an integer batch size: four child runs,
    two per trial number and group; each trial told its seeds' means; the parent gets
    the Pareto front's trials and figure."""
    import yaml

    code = workspace.train(
        *OPTUNA,
        "hydra.sweeper.direction=[maximize,minimize]",
        "hydra.sweeper.objectives=[val_accuracy,epoch_seconds]",
        "hydra.sweeper.seeds_per_trial=2",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.sampler.seed=0",
        search_params(**{"training.batch_size": "tag(log, int(interval(16, 64)))"}),
        "data=synthetic",
        "data.train_size=256",
        "data.validation_size=64",
        "data.test_size=64",
        "training.epochs=1",
        "training.verbose=0",
        "diagnostics.plots=false",
        "training.seed=3",
    )
    assert code == 0
    client = workspace.client()
    parent = sweep_parent(client)
    runs = children(client, parent)
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.metrics["param_count"] > 0 for r in runs)  # an objective too
    by_trial: dict[str, list] = {}
    for run in runs:
        by_trial.setdefault(run.data.tags["optuna_trial"], []).append(run)
    study = optuna_study(f"sqlite:///{workspace.folder / 'optuna.db'}")
    assert study.metric_names == ["val_accuracy", "epoch_seconds"]
    for trial in study.trials:
        seeds = by_trial[str(trial.number)]
        assert sorted(r.data.params["training.seed"] for r in seeds) == ["3", "4"]
        assert len({r.data.tags["group_hash"] for r in seeds}) == 1
        batch_size = trial.params["training.batch_size"]
        assert type(batch_size) is int
        assert {r.data.params["training.batch_size"] for r in seeds} == {str(batch_size)}
        accuracy = [r.data.metrics["val_accuracy"] for r in seeds]
        assert trial.values[0] == pytest.approx(sum(accuracy) / 2)
    results = yaml.safe_load((workspace.folder / "multirun" / RESULTS_FILE).read_text())
    front = ",".join(str(t["trial"]) for t in results["pareto_front"])
    assert parent.data.tags["pareto_front_trials"] == front
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "search")}
    assert "search/pareto_front.png" in logged
    # The search's report, built at the sweep's end: its section with the front and figure.
    page = (workspace.folder / "multirun" / "report" / "report.html").read_text()
    assert '<h2 id="search">' in page and '<table class="front">' in page
    assert 'data-file="search_pareto_front.png"' in page
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/search_pareto_front.png", "report/trials.csv"} <= logged
