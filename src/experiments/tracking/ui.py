"""`python -m experiments.tracking.ui` (`make ui`): the MLflow UI on this folder's runs.

MLflow 3 opens an experiment in its GenAI view (traces, sessions, judges), where this
lab's runs do not show; the address printed here opens the experiment's runs table in
the Model-training view directly. Only what browsing needs starts: no background job
runner (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false), two workers (a 2-core machine), and
the server listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from experiments.core import names
from experiments.tracking.server import server_env
from experiments.tracking.store import TrackingError, open_store, tracking_uri

DEFAULT_PORT = 5000
WORKERS = 2


def runs_address(host: str, port: int, experiment_id: str | None) -> str:
    """The runs table of the experiment in the Model-training view."""
    base = f"http://{host}:{port}"
    if experiment_id is None:
        return base
    return f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"


def ui_command(host: str, port: int, store_uri: str, workers: int = WORKERS) -> list[str]:
    return [
        sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port),
        "--workers", str(workers), "--backend-store-uri", store_uri,
    ]  # fmt: skip


def experiment_id(store_uri: str, experiment: str) -> str | None:
    """The experiment's id in the store, None when it has none (or no store yet)."""
    try:
        found = open_store(store_uri, create=False).get_experiment_by_name(experiment)
    except TrackingError:
        return None
    return found.experiment_id if found is not None else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gradlab-ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--backend-store-uri", default=None, help="default: ./mlflow.db")
    parser.add_argument("--experiment", default=names.DEFAULT_EXPERIMENT)
    parser.add_argument("--workers", type=int, default=WORKERS)
    args = parser.parse_args(argv)
    store = tracking_uri(args.backend_store_uri, Path.cwd())
    found = experiment_id(store, args.experiment)
    address = runs_address(args.host, args.port, found)
    if found is None:
        print(f"no experiment {args.experiment!r} in {store} yet; the UI opens on all of them")
    print(f"MLflow UI on {address} (Ctrl-C stops it)", flush=True)
    command = ui_command(args.host, args.port, store, args.workers)
    os.execve(command[0], command, server_env())


if __name__ == "__main__":
    main()
