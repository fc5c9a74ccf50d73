"""A run recorder that never stops training: when the tracking store fails mid-run (a
server that went away, a store that cannot be written), the job keeps training.

From the first failed call on, nothing more is sent (each call would wait for retries);
what could not be sent is appended to `unsent_records.jsonl` in the job's output folder,
beside the files the job writes anyway (history.csv with every epoch's metrics,
model.keras, resolved_config.yaml), and the job's log says where they are.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UNSENT_FILE = "unsent_records.jsonl"


class ResilientRecorder:
    """Same calls as tracking.RunRecorder; none of them raises."""

    def __init__(self, recorder, output_dir: Path):
        self.recorder = recorder
        self.output_dir = output_dir
        self.failure: str | None = None

    @property
    def run_id(self) -> str:
        return self.recorder.run_id

    @property
    def client(self):
        return self.recorder.client

    @property
    def offline(self) -> bool:
        return self.failure is not None

    def log_params(self, params: dict[str, Any]) -> None:
        self._send("params", {"params": params}, lambda: self.recorder.log_params(params))

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self._send(
            "metrics",
            {"step": step, "metrics": metrics},
            lambda: self.recorder.log_metrics(metrics, step=step),
        )

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._send("tags", {"tags": tags}, lambda: self.recorder.set_tags(tags))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._send(
            "artifact",
            {"path": str(path), "artifact_path": artifact_path},
            lambda: self.recorder.log_artifact(path, artifact_path),
        )

    def end(self, status: str, reason: str | None = None) -> None:
        self._send(
            "end", {"status": status, "reason": reason}, lambda: self.recorder.end(status, reason)
        )
        if self.offline:
            log.warning(
                "run %s is incomplete in %s (%s). Nothing trained is lost: the model "
                "(model.keras), every epoch's metrics (history.csv), the config and the "
                "records that were not sent (%s) are in %s on %s",
                self.run_id,
                self.client.tracking_uri,
                self.failure,
                UNSENT_FILE,
                self.output_dir,
                platform.node(),
            )

    def _send(self, kind: str, payload: dict[str, Any], call: Callable[[], None]) -> None:
        if not self.offline:
            try:
                call()
                return
            except Exception as e:  # whatever the store raises, training must go on
                self._go_offline(e)
        self._keep(kind, payload)

    def _go_offline(self, error: Exception) -> None:
        message = " ".join(str(getattr(error, "message", error)).split())
        self.failure = f"{type(error).__name__}: {message[:300]}"
        log.warning(
            "tracking store %s failed (%s); training goes on without it, and what is not "
            "sent is kept in %s",
            self.client.tracking_uri,
            self.failure,
            self.output_dir / UNSENT_FILE,
        )

    def _keep(self, kind: str, payload: dict[str, Any]) -> None:
        record = {"kind": kind, "time_ms": int(time.time() * 1000), **payload}
        with open(self.output_dir / UNSENT_FILE, "a") as out:
            out.write(json.dumps(record, default=str) + "\n")
