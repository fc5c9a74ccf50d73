"""A real MLflow tracking server process on a free loopback port, with MLflow's
basic-auth app, on PostgreSQL when the tests are given one (GRADLAB_TEST_POSTGRES_URL,
as .ci/run does), else on SQLite: it refuses a request without credentials; an Optuna
search under load sends it everything and keeps its study in the same database server;
an unreachable one is reported at once; one that goes away mid-run costs no training."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import pytest
from helpers.sweeps import (
    CREDENTIALS,
    POSTGRES_ENV,
    TINY,
    PostgresDatabase,
    TrackingServer,
    assert_load_sweep_complete,
    free_port,
    load_search,
    optuna_study,
    postgres_url,
    run_cli,
    trial_runs,
)
from mlflow.tracking import MlflowClient

# One worker runs the whole module, so its module-scoped fixtures are built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tracking.test_server")]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """(tracking server's store, Optuna storage): two fresh databases in the test
    PostgreSQL, or SQLite files where none is given."""
    if postgres_url() is None:
        folder = tmp_path_factory.mktemp("stores")
        yield None, f"sqlite:///{folder / 'optuna.db'}"
        return
    suffix = uuid.uuid4().hex[:8]
    with (
        PostgresDatabase(f"gradlab_mlflow_{suffix}") as mlflow_db,
        PostgresDatabase(f"gradlab_optuna_{suffix}") as optuna_db,
    ):
        yield mlflow_db.url, optuna_db.url


@pytest.fixture(scope="module")
def server(tmp_path_factory, stores):
    """A team's server: PostgreSQL (when given) and MLflow's basic-auth app."""
    started = TrackingServer.start(
        tmp_path_factory.mktemp("server"), store=stores[0], auth=CREDENTIALS
    )
    yield started
    started.stop()


@pytest.fixture
def logged_in(monkeypatch):
    """This process's MLflow clients send the admin's credentials."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def loaded(server, stores, tmp_path_factory):
    """The load search (16 trials, 4 at a time) through the server, its study in the
    same database server."""
    folder = tmp_path_factory.mktemp("load")
    code, output, _ = run_cli(
        folder,
        *load_search(stores[1]),
        "tracking=server",
        f"tracking.uri={server.uri}",
        **CREDENTIALS,
    )
    assert code == 0, output[-3000:]
    return folder, output


def test_a_request_without_credentials_is_refused(server):
    url = server.uri + "/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401
    # The admin's password is in no file of the server's (the auth app keeps a hash).
    for path in server.log_path.parent.glob("*"):
        if path.is_file() and path.suffix != ".db":
            assert CREDENTIALS["MLFLOW_TRACKING_PASSWORD"] not in path.read_text(errors="ignore")


def test_a_search_under_load_sends_the_server_everything(server, stores, loaded, logged_in):
    folder, output = loaded
    assert_load_sweep_complete(MlflowClient(server.uri), output)
    assert not (folder / "mlflow.db").exists()  # nothing went to a local store
    if stores[0] is not None:  # the runs are rows of the server's PostgreSQL database
        import sqlalchemy as sa

        engine = sa.create_engine(stores[0])
        with engine.connect() as connection:
            assert connection.execute(sa.text("select count(*) from runs")).scalar() == 17
        engine.dispose()


def test_the_search_keeps_its_study_in_postgresql(server, stores, loaded, logged_in):
    if postgres_url() is None:
        pytest.skip(f"no PostgreSQL to test against: set {POSTGRES_ENV} (.ci/run starts one)")
    trials = optuna_study(stores[1]).trials
    assert sorted(t.params["training.seed"] for t in trials) == list(range(16))
    assert {t.state.name for t in trials} == {"COMPLETE"}
    runs = trial_runs(MlflowClient(server.uri))
    for trial in trials:
        (run,) = runs[trial.number]
        assert trial.value == pytest.approx(run.data.metrics["val_accuracy"])
        assert sorted(trial.intermediate_values) == [0, 1, 2]  # every epoch reported


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "multirun"])
def test_an_unreachable_server_is_one_line_before_anything_starts(tmp_path, multirun):
    uri = f"http://127.0.0.1:{free_port()}"
    args = ["-m", "training.seed=1,2"] if multirun else []
    code, output, seconds = run_cli(tmp_path, *args, f"tracking.uri={uri}", *TINY, timeout=120)
    assert code == 1
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and uri in errors[0] and "unreachable" in errors[0], output
    assert "Traceback" not in output
    # MLflow's own retries would take minutes (benchmarks/bench_tracking_faults.py
    # prints the time this takes).
    assert seconds < 60
    assert not list(tmp_path.rglob("history.csv"))  # no training started
