"""A run recorder that never stops training and never loses a record.

When the tracking store fails mid-run (a server that went away, a database that cannot
be written), the job keeps training: what cannot be sent is appended to
`unsent_records.jsonl` in the job's output folder (`tracking.replay`), beside the files
the job writes anyway (history.csv, the model in model/, resolved_config.yaml). While the run
goes on, the recorder tries the store again now and then (every `RETRY_SECONDS`, not at
every call: each failing call waits for the client's retries), and once it answers, sends
what was kept, in order, and carries on. An artifact store that fails while the tracking
store works costs that artifact only: metrics, tags and the run's end still go out.
Whatever is left at the end is reported in one line; `python -m experiments.sync` sends it.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.tracking import replay

log = logging.getLogger(__name__)

UNSENT_FILE = replay.UNSENT_FILE
# Seconds between two tries of a store that failed; GRADLAB_STORE_RETRY_SECONDS overrides.
RETRY_SECONDS = 30.0


class ResilientRecorder:
    """Same calls as tracking.recorder.RunRecorder; none of them raises."""

    def __init__(self, recorder, output_dir: Path, retry_seconds: float | None = None):
        self.recorder = recorder
        self.output_dir = output_dir
        self.retry_seconds = (
            float(os.environ.get("GRADLAB_STORE_RETRY_SECONDS", RETRY_SECONDS))
            if retry_seconds is None
            else retry_seconds
        )
        self.failure: str | None = None  # the tracking store's, while it fails
        self.artifact_failure: str | None = None
        self._next_try = 0.0

    @property
    def run_id(self) -> str:
        return self.recorder.run_id

    @property
    def client(self):
        return self.recorder.client

    @property
    def offline(self) -> bool:
        return self.failure is not None

    @property
    def unsent(self) -> int:
        """Records kept in the output folder that have not reached the store."""
        return len(replay.pending(self.output_dir))

    def log_params(self, params: dict[str, Any]) -> None:
        self._send("params", {"params": params}, lambda: self.recorder.log_params(params))

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        measured = int(time.time() * 1000)
        self._send(
            "metrics",
            {"step": step, "metrics": metrics, "time_ms": measured},
            lambda: self.recorder.log_metrics(metrics, step=step, timestamp_ms=measured),
        )

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._send("tags", {"tags": tags}, lambda: self.recorder.set_tags(tags))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._send(
            "artifact",
            {"path": str(path), "artifact_path": artifact_path},
            lambda: self.recorder.log_artifact(path, artifact_path),
        )

    def log_datasets(self, datasets: list[dict[str, Any]]) -> None:
        self._send("datasets", {"datasets": datasets}, lambda: self.recorder.log_datasets(datasets))

    def log_model(self, folder: Path, step: int, linked_keys: list[str]) -> None:
        self._send(
            "model",
            {"path": str(folder), "step": step, "linked_keys": linked_keys},
            lambda: self.recorder.log_model(folder, step, linked_keys),
        )

    def end(self, status: str, reason: str | None = None) -> None:
        if self.offline:
            self._next_try = 0.0  # the last chance to send everything: try now
        self._send(
            "end", {"status": status, "reason": reason}, lambda: self.recorder.end(status, reason)
        )
        left = self.unsent
        if left:
            why = self.failure or self.artifact_failure
            log.warning(
                "run %s is incomplete in %s (%s): %d records could not be sent. Nothing "
                "trained is lost: they, the model (model/), every epoch's metrics "
                "(history.csv) and the config are in %s on %s; `python -m experiments.sync "
                "%s` sends them",
                self.run_id,
                self.client.tracking_uri,
                why,
                left,
                self.output_dir,
                platform.node(),
                self.output_dir,
            )

    def incomplete_reason(self) -> str | None:
        """One line for the end of the command, or None when everything arrived."""
        left = self.unsent
        if not left:
            return None
        why = self.failure or self.artifact_failure
        return (
            f"run {self.run_id} is incomplete in {self.client.tracking_uri} ({why}): {left} "
            f"records are kept in {self.output_dir}; `python -m experiments.sync "
            f"{self.output_dir}` sends them"
        )

    def _send(self, kind: str, payload: dict[str, Any], call: Callable[[], None]) -> None:
        if self.offline:
            self._try_again()
        if not self.offline:
            try:
                call()
                return
            except Exception as e:  # whatever the store raises, training must go on
                if kind in replay.ARTIFACT_KINDS and replay.store_answers(self.recorder):
                    self._artifact_failed(e)
                else:
                    self._go_offline(e)
        self._keep(kind, payload)

    def _artifact_failed(self, error: Exception) -> None:
        if self.artifact_failure is None:
            self.artifact_failure = f"artifact store: {replay.one_line(error)}"
            log.warning(
                "artifact store of run %s failed (%s); metrics and the run's status still go "
                "to %s, artifacts are kept in %s",
                self.run_id,
                self.artifact_failure,
                self.client.tracking_uri,
                self.output_dir / UNSENT_FILE,
            )

    def _go_offline(self, error: Exception) -> None:
        self.failure = replay.one_line(error)
        self._next_try = time.monotonic() + self.retry_seconds
        log.warning(
            "tracking store %s failed (%s); training goes on without it, what is not sent "
            "is kept in %s, and the store is tried again every %.0f s",
            self.client.tracking_uri,
            self.failure,
            self.output_dir / UNSENT_FILE,
            self.retry_seconds,
        )

    def _try_again(self) -> None:
        """Once the retry interval has passed: send what was kept, in order; online again
        only if all of it (but artifacts the artifact store refuses) went out."""
        if time.monotonic() < self._next_try:
            return
        outcome = replay.replay(self.output_dir, lambda record: self.recorder)
        stuck = [
            r for _, r in replay.pending(self.output_dir) if r["kind"] not in replay.ARTIFACT_KINDS
        ]
        if stuck:
            self._next_try = time.monotonic() + self.retry_seconds
            return
        log.info(
            "tracking store %s answers again: %d kept records sent",
            self.client.tracking_uri,
            outcome.sent,
        )
        self.failure = None

    def _keep(self, kind: str, payload: dict[str, Any]) -> None:
        replay.keep(
            self.output_dir,
            {
                "kind": kind,
                "time_ms": int(time.time() * 1000),
                "run_id": self.run_id,
                "tracking_uri": self.client.tracking_uri,
                **payload,
            },
        )
