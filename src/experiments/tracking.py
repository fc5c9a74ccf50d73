"""MLflow: where runs go, how they are named, and what each run records.

Everything goes through an explicit `MlflowClient` (no fluent global state), so one
process can hold a sweep's parent run and a job's run at once, and tests can point
several stores at temporary folders in-process.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
GROUPS = ("data", "model", "init", "activation", "normalization", "clipping", "optimizer")
# MLflow's limits on one log_batch call.
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


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


def flatten(cfg: DictConfig | dict, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a resolved config (lists stay one value), Hydra's node left out."""
    node = (
        OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        if isinstance(cfg, DictConfig)
        else cfg
    )
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if not prefix and key == "hydra":
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _text(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    return "null" if value is None else str(value)


NAME_GROUPS = ("activation", "init", "normalization", "clipping", "optimizer")


def run_name(choices: dict[str, str], overrides: list[str]) -> str:
    """`<activation>-<init>-<normalization>-<clipping>-<optimizer>` (or the preset's
    name), then the command line's overrides that change what the run computes
    (`model=deep`, `optimizer.learning_rate=0.01`; not `tracking.*` or
    `training.verbose`): readable in the runs table."""
    from experiments.resume import IGNORED_KEYS

    base = choices.get("experiment") or "-".join(choices[g] for g in NAME_GROUPS if g in choices)

    def shown(override: str) -> bool:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in NAME_GROUPS or key in ("experiment", "hparams_search"):
            return False
        return not any(key == k or key.startswith(k + ".") for k in IGNORED_KEYS)

    extra = [o for o in overrides if shown(o)]
    name = base if not extra else f"{base} " + ",".join(extra)
    return name[:250]


def git_commit(folder: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


@dataclass
class RunRecorder:
    """One MLflow run: batched params, metrics by epoch, tags, artifacts, its end."""

    client: MlflowClient
    run_id: str

    @classmethod
    def start(
        cls,
        client: MlflowClient,
        experiment_id: str,
        name: str,
        tags: dict[str, str],
        parent_run_id: str | None = None,
    ) -> RunRecorder:
        all_tags = dict(tags)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(experiment_id, run_name=name, tags=all_tags)
        return cls(client, run.info.run_id)

    def log_params(self, params: dict[str, Any]) -> None:
        # Null fields are options the chosen group option does not use: left out.
        items = [Param(k, _text(v)[:6000]) for k, v in params.items() if v is not None]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(items), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + MAX_METRICS_PER_BATCH])

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, _text(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, status: str, reason: str | None = None) -> None:
        """FINISHED, FAILED or KILLED; a reason lands in the `failure_reason` tag."""
        if reason:
            self.client.set_tag(self.run_id, "failure_reason", reason)
        self.client.set_terminated(self.run_id, status=status)
