"""One MLflow run's records through an explicit client: params and metrics in batches,
tags, artifacts, its end."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from experiments.core import names
from experiments.tracking.logged_model import upload
from experiments.tracking.uninterrupted import held

# MLflow's limits on one log_batch call.
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


def _text(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    return "null" if value is None else str(value)


def context_tags(tags: dict[str, Any], description: str | None = None) -> dict[str, str]:
    """What MLflow's own context resolution says of this process (user, source name and
    type, git commit), then `tags`, and `description` as the run's note."""
    all_tags = resolve_tags({k: str(v) for k, v in tags.items()})
    # Where MLflow finds no repository (a Ray worker, a job not started from a file of
    # the checkout), the lab's own reading of the checkout's commit stands in.
    if names.MLFLOW_GIT_COMMIT_TAG not in all_tags and names.GIT_COMMIT_TAG in tags:
        all_tags[names.MLFLOW_GIT_COMMIT_TAG] = str(tags[names.GIT_COMMIT_TAG])
    if description:
        all_tags[names.DESCRIPTION_TAG] = description
    return all_tags


@dataclass
class RunRecorder:
    """One MLflow run: batched params, metrics by epoch, tags, artifacts, its end; each
    write whole, whatever signal comes meanwhile (tracking.uninterrupted)."""

    client: MlflowClient
    run_id: str

    @classmethod
    @held
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
            all_tags[names.PARENT_TAG] = parent_run_id
        run = client.create_run(experiment_id, run_name=name, tags=all_tags)
        return cls(client, run.info.run_id)

    @held
    def log_params(self, params: dict[str, Any]) -> None:
        # Null fields are options the chosen group option does not use: left out.
        items = [Param(k, _text(v)[:6000]) for k, v in params.items() if v is not None]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_PARAMS_PER_BATCH])

    @held
    def log_metrics(
        self, metrics: dict[str, float], step: int = 0, timestamp_ms: int | None = None
    ) -> None:
        """`timestamp_ms`: when the values were measured (a replay keeps the original
        time, so MLflow recognises a metric it already holds and keeps it once)."""
        now = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(items), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + MAX_METRICS_PER_BATCH])

    @held
    def set_tags(self, tags: dict[str, Any]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, _text(v)) for k, v in tags.items()])

    @held
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    @held
    def log_datasets(self, datasets: list[dict[str, Any]]) -> None:
        """Dataset inputs, each a dict of MLflow's Dataset fields plus its `context`."""
        inputs = [
            DatasetInput(
                Dataset(**{k: v for k, v in d.items() if k != "context"}),
                tags=[InputTag(names.DATASET_CONTEXT_TAG, d["context"])],
            )
            for d in datasets
        ]
        self.client.log_inputs(self.run_id, datasets=inputs)

    @held
    def log_model(self, folder: Path, step: int, linked_keys: list[str]) -> None:
        """The model saved in `folder` (tracking.logged_model.save) as the run's Logged Model."""
        upload(self.client, self.run_id, folder, step, linked_keys)

    @held
    def end(self, status: str, reason: str | None = None) -> None:
        """FINISHED, FAILED or KILLED; a reason lands in the `failure_reason` tag."""
        if reason:
            self.client.set_tag(self.run_id, names.FAILURE_REASON_TAG, reason)
        self.client.set_terminated(self.run_id, status=status)
