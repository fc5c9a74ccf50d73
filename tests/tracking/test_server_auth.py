"""A shared server's login: `make server` refuses to listen beyond loopback without one,
or with a login but no credentials to make its admin from. (A server with the login
refusing a request without credentials: tests/tracking/test_server.py.)"""

from __future__ import annotations

import pytest
from helpers.sweeps import CREDENTIALS

from experiments.tracking import server


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
