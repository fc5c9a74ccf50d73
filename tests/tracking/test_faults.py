"""The tracking store failing: an unreachable server answers in one line before anything
starts; a store that fails mid-run costs records, never the training."""

from __future__ import annotations

import json
import logging
import os
import socket
import time

import pytest
from helpers.sweeps import free_port

from experiments.tracking import server as tracking_server
from experiments.tracking.kept_records import UNSENT_FILE
from experiments.tracking.recorder import RunRecorder
from experiments.tracking.resilient import ResilientRecorder


@pytest.fixture
def fail_fast_http(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


def test_a_closed_port_is_reported_in_one_line(fail_fast_http):
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(tracking_server.ServerUnreachable) as caught:
        tracking_server.check_reachable(uri)
    message = str(caught.value)
    assert "\n" not in message
    assert uri in message and "make server" in message


def test_a_server_that_never_answers_is_reported_after_the_timeout(fail_fast_http):
    # Connections are accepted (by the kernel's backlog) but nothing ever replies.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(tracking_server.ServerUnreachable, match="unreachable"):
            tracking_server.check_reachable(uri, timeout=1.0)
        assert time.monotonic() - started < 5


def test_stores_that_are_not_servers_are_not_checked(tmp_path):
    tracking_server.check_reachable(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_a_server_check_shortens_mlflows_retries(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")  # the user's own setting wins
    with pytest.raises(tracking_server.ServerUnreachable):
        tracking_server.check_reachable(f"http://127.0.0.1:{free_port()}")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"


def test_the_server_command_binds_to_loopback_by_default():
    command = tracking_server.server_command()
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1].startswith("sqlite:///")


def test_a_store_lost_mid_run_costs_records_never_the_training(tmp_path, fail_fast_http, caplog):
    from mlflow.tracking import MlflowClient

    # A real client whose server has gone away: every call fails.
    gone = MlflowClient(f"http://127.0.0.1:{free_port()}")
    recorder = ResilientRecorder(RunRecorder(gone, "0123456789abcdef"), tmp_path)
    with caplog.at_level(logging.WARNING):
        recorder.log_params({"optimizer.learning_rate": 0.05})
        for epoch in range(3):
            recorder.log_metrics({"loss": 1.0 / (epoch + 1)}, step=epoch)
        recorder.log_artifact(tmp_path / "model.keras", "model")
        recorder.end("FINISHED")

    assert recorder.offline
    kept = [json.loads(line) for line in (tmp_path / UNSENT_FILE).read_text().splitlines()]
    assert [r["kind"] for r in kept] == [
        "params",
        "metrics",
        "metrics",
        "metrics",
        "artifact",
        "end",
    ]
    assert [r["step"] for r in kept if r["kind"] == "metrics"] == [0, 1, 2]
    assert kept[-1]["status"] == "FINISHED"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once when the store is lost, once at the end
    assert str(tmp_path) in warnings[-1] and "history.csv" in warnings[-1]


def test_a_working_store_gets_everything_and_no_file(workspace):
    client = workspace.client()
    experiment_id = client.create_experiment("resilient")
    recorder = ResilientRecorder(
        RunRecorder.start(client, experiment_id, "r", {}), workspace.folder
    )
    recorder.log_metrics({"loss": 0.5}, step=0)
    recorder.end("FINISHED")
    assert not recorder.offline
    assert not (workspace.folder / UNSENT_FILE).exists()
    run = client.get_run(recorder.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["loss"] == 0.5
