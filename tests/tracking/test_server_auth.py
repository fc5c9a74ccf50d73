"""A shared server's login: `make server` refuses to listen beyond loopback without one,
and MLflow's basic-auth app (`--auth basic`) refuses a request without credentials."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from helpers.sweeps import TrackingServer

from experiments.tracking import server

CREDENTIALS = {
    "MLFLOW_TRACKING_USERNAME": "lab-admin",
    "MLFLOW_TRACKING_PASSWORD": "not-a-default-9",
}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "lab.example.org"])
def test_beyond_loopback_the_server_refuses_to_start_without_a_login(host, capsys):
    with pytest.raises(SystemExit) as exited:
        server.main(["--host", host])
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --host {host} ") and "--auth basic" in line


def test_basic_auth_needs_the_admin_credentials(monkeypatch, capsys, tmp_path):
    for name in (*CREDENTIALS, "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exited:
        server.main(["--host", "0.0.0.0", "--auth", "basic", "--artifacts", str(tmp_path / "a")])
    assert exited.value.code == 2
    assert "MLFLOW_TRACKING_PASSWORD" in capsys.readouterr().err


def test_loopback_needs_no_login():
    server.check_exposure("127.0.0.1", auth=False)
    server.check_exposure("localhost", auth=False)
    server.check_exposure("0.0.0.0", auth=True)


@pytest.mark.slow
def test_a_request_without_credentials_is_refused(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    started = TrackingServer.start(tmp_path / "server", auth=CREDENTIALS)
    try:
        url = started.uri + "/api/2.0/mlflow/experiments/search?max_results=1"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        # The same request from MLflow's client, with the credentials in its environment.
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        client = MlflowClient(started.uri)
        experiment_id = client.create_experiment("behind-a-login")
        assert client.get_experiment(experiment_id).name == "behind-a-login"
    finally:
        started.stop()
    # The admin's password is nowhere in the server's files.
    assert not any(
        CREDENTIALS["MLFLOW_TRACKING_PASSWORD"] in p.read_text(errors="ignore")
        for p in (tmp_path / "server").glob("*")
        if p.is_file() and p.suffix != ".db"
    )
