"""Where runs go: the tracking store's URI, its artifact location, the experiment.

Everything goes through an explicit `MlflowClient` (no fluent global state), so one
process can hold a sweep's parent run and a job's run at once, and tests can point
several stores at temporary folders in-process.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlruns"


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used."""


def tracking_uri(configured: str | None, launch_dir: Path) -> str:
    """The config key wins, then $MLFLOW_TRACKING_URI, then a SQLite file in the launch
    folder. Relative SQLite paths are made absolute here, once, so that nothing that
    changes the working directory later can move the store."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DB_NAME}"
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        uri = prefix + str((launch_dir / uri[len(prefix) :]).resolve())
    return uri


def artifact_location(uri: str, launch_dir: Path) -> str | None:
    """Artifacts of a local SQLite store live in <launch folder>/mlruns, where `mlflow ui`
    run from that folder finds them; a server decides for itself (None)."""
    if uri.startswith("sqlite:"):
        return (launch_dir / ARTIFACTS_DIR).resolve().as_uri()
    return None


def ensure_experiment(client: MlflowClient, name: str, location: str | None) -> str:
    """The experiment's id, creating it (and a fresh store's schema) if needed. Two
    processes may race to create it; the loser reads the winner's."""
    try:
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            return found.experiment_id
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as e:
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        raise TrackingError(f"tracking store {client.tracking_uri}: {e.message}") from None


def git_commit(folder: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"
