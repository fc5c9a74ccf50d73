"""The `tracking` group's schema (conf/tracking/*.yaml): where runs are recorded and
what is recorded. Kept apart from the store because config-only commands import the
schema and not MLflow."""

from __future__ import annotations

from dataclasses import dataclass

from experiments.core import names


@dataclass
class TrackingConfig:
    experiment: str = names.DEFAULT_EXPERIMENT
    # null: $MLFLOW_TRACKING_URI, else sqlite:///<launch folder>/mlflow.db
    uri: str | None = None
    log_model: bool = True
    # In a multirun, skip a job whose identical config already FINISHED (tracking.resume).
    skip_finished: bool = True
    # CPU, memory, disk and network as `system/*` metrics, by MLflow's own sampler (the
    # `system-metrics` extra brings psutil), every `system_metrics_interval` seconds.
    system_metrics: bool = False
    system_metrics_interval: float = 10.0
