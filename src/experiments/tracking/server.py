"""The shared MLflow tracking server: how `make server` starts one, and a quick check
that a configured one answers before a run or a sweep begins.

`python -m experiments.tracking.server [--host H] [--port P] [--backend-store-uri URI]
[--artifacts DIR] [--auth basic] [--allowed-hosts H,...]` runs `mlflow server` in the
foreground (Ctrl-C stops it). By default it listens on 127.0.0.1 only, keeps runs in a
SQLite file and artifacts in a folder of the project; a team points --backend-store-uri
at PostgreSQL instead. Beyond loopback it refuses to start without `--auth basic`:
MLflow's basic-auth app, its admin taken from MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD (the variables MLflow's clients send), its users in a SQLite
file beside the artifacts.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path

from experiments.paths import home_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
DEFAULT_DIR = home_dir() / "tracking-server"
# Seconds the start-up check waits for an answer; the whole error must come within 10 s.
CHECK_TIMEOUT_S = 3.0
# MLflow's HTTP client retries a failed request 7 times with backoff (minutes in all)
# and waits up to 120 s per request; a job that has lost its server should notice in
# seconds and carry on without it. A user's own settings of these variables win.
FAIL_FAST_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


class ServerUnreachable(RuntimeError):
    """The configured tracking server does not answer."""


class UnsafeServer(ValueError):
    """A server setting that would expose runs without authentication."""


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
    auth: bool = False,
    allowed_hosts: str | None = None,
) -> list[str]:
    """`mlflow server` with runs in `backend_store_uri` (default: a SQLite file under
    tracking-server/) and artifacts uploaded through the server into `artifacts_dir`;
    `auth` runs MLflow's basic-auth app (see `auth_env` for its settings)."""
    artifacts = (artifacts_dir or DEFAULT_DIR / "artifacts").resolve()
    store = backend_store_uri or f"sqlite:///{(DEFAULT_DIR / 'mlflow.db').resolve()}"
    extra = (["--app-name", "basic-auth"] if auth else []) + (
        ["--allowed-hosts", allowed_hosts] if allowed_hosts else []
    )
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
        *extra,
    ]


def server_env(auth_dir: Path | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment (`base`, else this process's): MLflow's background job
    runner off (this project runs no server-side jobs, and that runner keeps the server
    alive after a stop signal); with `auth_dir`, the basic-auth app's settings
    (`auth_env`)."""
    env = {**(os.environ if base is None else base), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return env | auth_env(auth_dir, env) if auth_dir is not None else env


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, auth: bool) -> None:
    """Raises UnsafeServer for a server reachable beyond this machine without a login."""
    if not auth and not is_loopback(host):
        raise UnsafeServer(
            f"--host {host} makes every run readable and writable from the network without a "
            "login: add --auth basic (make server SERVER_AUTH=basic) with "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD set, or keep --host 127.0.0.1"
        )


def auth_env(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """MLflow's basic-auth app: its config file (users in `folder`/basic_auth.db, new users
    may read, no password in the file) and its first admin, from MLFLOW_AUTH_ADMIN_* or
    else from the client variables MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD."""
    user = env.get("MLFLOW_AUTH_ADMIN_USERNAME") or env.get("MLFLOW_TRACKING_USERNAME")
    password = env.get("MLFLOW_AUTH_ADMIN_PASSWORD") or env.get("MLFLOW_TRACKING_PASSWORD")
    if not user or not password:
        raise UnsafeServer(
            "--auth basic needs the admin's credentials: set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (the same variables the runs' clients send)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{(folder / 'basic_auth.db').resolve()}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # A password check is a slow hash by design; a sweep sends many requests a second.
        # A changed password takes effect within this many seconds.
        "auth_cache_ttl_seconds = 60\n"
    )
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_USERNAME": user,
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": env.get("MLFLOW_FLASK_SERVER_SECRET_KEY")
        or _secret_key(folder / "flask_secret_key"),
    }


def _secret_key(path: Path) -> str:
    """The key of the auth app's CSRF tokens: made once, kept (owner-only) so that a
    restarted server accepts the forms of the one before."""
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gradlab-server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--backend-store-uri", default=None)
    parser.add_argument("--artifacts", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--auth", choices=["none", "basic"], default="none")
    parser.add_argument("--allowed-hosts", default=None, help="Host headers to answer")
    args = parser.parse_args(argv)
    auth = args.auth == "basic"
    artifacts = args.artifacts or DEFAULT_DIR / "artifacts"
    try:
        check_exposure(args.host, auth)
        env = server_env(artifacts.resolve().parent if auth else None)
    except UnsafeServer as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    command = server_command(
        args.host,
        args.port,
        args.backend_store_uri,
        artifacts,
        args.workers,
        auth=auth,
        allowed_hosts=args.allowed_hosts,
    )
    artifacts.mkdir(parents=True, exist_ok=True)
    login = " (basic auth)" if auth else ""
    print(
        f"MLflow tracking server on http://{args.host}:{args.port}{login} (Ctrl-C stops it)",
        flush=True,
    )
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
