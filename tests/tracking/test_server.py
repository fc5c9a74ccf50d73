"""A real MLflow tracking server process on a free loopback port: a sweep under load
sends it everything; an unreachable one is reported at once; one that goes away
mid-run costs no training."""

from __future__ import annotations

import pytest
from helpers.sweeps import (
    LOAD_SWEEP,
    TINY,
    TrackingServer,
    assert_load_sweep_complete,
    free_port,
    run_cli,
)
from mlflow.tracking import MlflowClient

# One worker runs the whole module, so its module-scoped fixtures are built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tracking.test_server")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = TrackingServer.start(tmp_path_factory.mktemp("server"))
    yield started
    started.stop()


def test_a_sweep_under_load_sends_the_server_everything(server, tmp_path):
    code, output, _ = run_cli(
        tmp_path, *LOAD_SWEEP, "tracking=server", f"tracking.uri={server.uri}"
    )
    assert code == 0, output[-3000:]
    assert_load_sweep_complete(MlflowClient(server.uri), output)
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store


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
