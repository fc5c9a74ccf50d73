"""The shared MLflow tracking server: how `make server` starts one, and a quick check
that a configured one answers before a run or a sweep begins.

`python -m experiments.tracking.server [--host H] [--port P] [--backend-store-uri URI]
[--artifacts DIR]` runs `mlflow server` in the foreground (Ctrl-C stops it). By default
it listens on 127.0.0.1 only, keeps runs in a SQLite file and artifacts in a folder of
the project; a team points --backend-store-uri at PostgreSQL instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from experiments.paths import PROJECT_DIR

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
DEFAULT_DIR = PROJECT_DIR / "tracking-server"
# Seconds the start-up check waits for an answer; the whole error must come within 10 s.
CHECK_TIMEOUT_S = 3.0
# MLflow's HTTP client retries a failed request 7 times with backoff (minutes in all)
# and waits up to 120 s per request; a job that has lost its server should notice in
# seconds and carry on without it. A user's own settings of these variables win.
FAIL_FAST_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


class ServerUnreachable(RuntimeError):
    """The configured tracking server does not answer."""


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_reachable(uri: str, timeout: float = CHECK_TIMEOUT_S) -> None:
    """Raises ServerUnreachable (a one-line message) unless an HTTP tracking URI answers
    within `timeout`; a store that is not a server (SQLite, PostgreSQL) passes. Also
    shortens MLflow's HTTP retries for the rest of this process."""
    if not is_server_uri(uri):
        return
    for name, value in FAIL_FAST_HTTP.items():
        os.environ.setdefault(name, value)
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered (a proxy or an auth layer may refuse /health): reachable
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ServerUnreachable(
            f"tracking server {uri} is unreachable ({reason}): start it with `make server`, "
            "or point tracking.uri (or MLFLOW_TRACKING_URI) at a running one"
        ) from None


def server_command(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    backend_store_uri: str | None = None,
    artifacts_dir: Path | None = None,
    workers: int = 1,
) -> list[str]:
    """`mlflow server` with runs in `backend_store_uri` (default: a SQLite file under
    tracking-server/) and artifacts uploaded through the server into `artifacts_dir`."""
    artifacts = (artifacts_dir or DEFAULT_DIR / "artifacts").resolve()
    store = backend_store_uri or f"sqlite:///{(DEFAULT_DIR / 'mlflow.db').resolve()}"
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        store,
        "--artifacts-destination",
        str(artifacts),
    ]


def server_env() -> dict[str, str]:
    """The server's environment: MLflow's background job runner off (this project runs
    no server-side jobs, and that runner keeps the server alive after a stop signal)."""
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--backend-store-uri", default=None)
    parser.add_argument("--artifacts", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    command = server_command(
        args.host, args.port, args.backend_store_uri, args.artifacts, args.workers
    )
    (args.artifacts or DEFAULT_DIR / "artifacts").mkdir(parents=True, exist_ok=True)
    print(f"MLflow tracking server on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    os.execve(command[0], command, server_env())


if __name__ == "__main__":
    main()
