"""A run recorder that never stops training and never loses a record.

When the tracking store fails mid-run (a server that went away, a database that cannot
be written), the job keeps training: what cannot be sent is appended to
`unsent_records.jsonl` in the job's output folder (`tracking.kept_records`), beside the files
the job writes anyway (history.csv, the model in model/, resolved_config.yaml). While the run
goes on, the recorder tries the store again now and then (every `RETRY_SECONDS`, not at
every call: each failing call waits for the client's retries), and once it answers, sends
what was kept, in order, and carries on. An artifact store that fails while the tracking
store works costs that artifact only: metrics, tags and the run's end still go out.
Whatever is left at the end is reported in one line; `python -m experiments.sync` sends it.

A full disk: when the output folder cannot take a record either, the records go on in
the run's spill folder in the temporary folder (`spill.open_spill`); the end line says
where, and names the full disk (ENOSPC) and what to do. At the end the run's tags list
the artifacts the store lacks (`names.MISSING_TAG`, kept up to date by every replay).
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.core import names
from experiments.tracking import kept_records, replay
from experiments.tracking.spill import mount_of, no_space, open_spill, path_of
from experiments.tracking.store import sqlite_path

log = logging.getLogger(__name__)

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
        self.write_failure: str | None = None  # a folder of the run's files refused them
        # The first full disk met: its mount point (a remote store: its URI).
        self.full_disk: str | None = None
        self.spill: Path | None = None  # files and records the output folder refuses
        self.unwritten: list[str] = []  # artifacts that could be written nowhere
        self.spilled: list[str] = []  # artifacts written in the spill folder instead
        self.lost = 0  # records that could be kept nowhere
        self.status: str | None = None  # the status the run was ended with
        self._records_spilled = False
        self._next_try = 0.0
        # Each metric's value at its latest step: what an optimizing sweeper reads back.
        self._final: dict[str, tuple[int, float]] = {}

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
    def folders(self) -> list[Path]:
        """Where this run's records are kept, in the order they were made."""
        return [self.output_dir, *filter(None, [self.spill])]

    @property
    def unsent(self) -> int:
        """Records kept (output folder, spill folder) that have not reached the store."""
        return sum(len(kept_records.pending(folder)) for folder in self.folders)

    def log_params(self, params: dict[str, Any]) -> None:
        self._send("params", {"params": params}, lambda: self.recorder.log_params(params))

    def log_metrics(
        self, metrics: dict[str, float], step: int = 0, time_ms: int | None = None
    ) -> None:
        """`time_ms`: when they were measured, if not now (values held for a checkpoint,
        sent again with the same time after a restart: MLflow keeps them once)."""
        for key, value in metrics.items():
            if step >= self._final.get(key, (step, 0.0))[0]:
                self._final[key] = (step, float(value))
        measured = int(time.time() * 1000) if time_ms is None else time_ms
        self._send(
            "metrics",
            {"step": step, "metrics": metrics, "time_ms": measured},
            lambda: self.recorder.log_metrics(metrics, step=step, timestamp_ms=measured),
        )

    @property
    def final_metrics(self) -> dict[str, float]:
        """Each metric logged, at its latest step (whether or not the store has it)."""
        return {key: value for key, (_, value) in self._final.items()}

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
        self.status = status
        if self.offline:
            self._next_try = 0.0  # the last chance to send everything: try now
        self._tag_missing()
        self._send(
            "end", {"status": status, "reason": reason}, lambda: self.recorder.end(status, reason)
        )
        line = self.incomplete_reason()
        if line:  # a sweep's job says it here: only a single run prints the line itself
            safe = not (self.unwritten or self.lost)
            log.warning(
                "%s%s",
                line,
                f". Nothing trained is lost: the model (model/), every epoch's metrics "
                f"(history.csv) and the config are in {self.output_dir} on {platform.node()}"
                if safe
                else f" (host {platform.node()})",
            )

    def incomplete_reason(self) -> str | None:
        """One line for the end of the command, or None when everything arrived."""
        kept = {folder: [r for _, r in kept_records.pending(folder)] for folder in self.folders}
        records = [record for found in kept.values() for record in found]
        left = len(records)
        places = ", ".join(str(folder) for folder, found in kept.items() if found)
        if not (left or self.unwritten or self.lost):
            return None
        why = self.failure or self.artifact_failure or self.write_failure
        sync = f"`python -m experiments.sync {self.output_dir}`"
        parts = [f"{left} records are kept in {places}"] if left else []
        if self.spilled:
            parts.append(f"{', '.join(self.spilled)} written in {self.spill} instead")
        if self.unwritten:
            parts.append(f"not written anywhere: {', '.join(self.unwritten)}")
        if self.lost:
            parts.append(f"{self.lost} records could be kept nowhere")
        if self.full_disk is None:
            return (
                f"run {self.run_id} is incomplete in {self.client.tracking_uri} ({why}): "
                f"{'; '.join(parts)}" + (f"; {sync} sends them" if left else "")
            )
        missing = replay.artifacts_among(self.run_id, records)
        ended = "finished" if self.status == "FINISHED" else f"ended {self.status}"
        return (
            f"no space left on device (ENOSPC) on {self.full_disk}: run {self.run_id} {ended}, "
            f"but not all of it reached {self.client.tracking_uri}"
            + (f" (missing artifacts: {', '.join(missing)})" if missing else "")
            + f"; {'; '.join(parts)}; free space on {self.full_disk}"
            + (f", then {sync} sends them" if left else "")
        )

    def note_write_failure(self, what: str, error: OSError, folder: Path) -> None:
        """A file of the run (an artifact, the model) could not be written in `folder`."""
        self._note_full(error, folder)
        if self.write_failure is None:
            self.write_failure = f"{folder}: {replay.one_line(error)}"
        log.warning("%s could not be written in %s (%s)", what, folder, replay.one_line(error))

    def note_unwritten(self, what: str) -> None:
        """An artifact that no folder could take: named in the end line and the run's tags."""
        self.unwritten.append(what)

    def spill_folder(self) -> Path:
        """The run's spill folder, made on first use (raises OSError if it cannot be)."""
        if self.spill is None:
            self.spill = open_spill(self.run_id, self.output_dir)
        return self.spill

    def _tag_missing(self) -> None:
        """The run's tags say which artifacts the store lacks and why, before it ends.
        While the tracking store is away, MISSING_TAG is left to the replay that sends
        the kept records (it sets the tag from what is still kept then); the artifacts
        written nowhere are no records, so their tags are sent or kept as one."""
        tags = {}
        missing = replay.missing_artifacts(self.run_id, self.folders)
        if missing and not self.offline:
            tags[names.MISSING_TAG] = ", ".join(missing)
            tags[names.MISSING_REASON_TAG] = replay.missing_reason(
                self.artifact_failure or self.write_failure, self.folders, self.output_dir
            )
        if self.unwritten:
            tags[names.UNWRITTEN_TAG] = ", ".join(self.unwritten)
            tags[names.UNWRITTEN_REASON_TAG] = str(self.write_failure)
        if self.full_disk is not None:
            for key in [k for k in tags if k.endswith("_reason")]:
                tags[key] = f"no space left on device (ENOSPC) on {self.full_disk}: {tags[key]}"
        if tags:
            self.set_tags(tags)

    def _send(self, kind: str, payload: dict[str, Any], call: Callable[[], None]) -> None:
        if self.offline:
            self._try_again()
        if not self.offline:
            try:
                call()
                return
            except Exception as e:  # whatever the store raises, training must go on
                if kind in replay.ARTIFACT_KINDS and replay.store_answers(self.recorder):
                    replay.drop_partial_artifact(self.recorder, {"kind": kind, **payload})
                    if no_space(e):
                        self._note_full(e, replay.local_artifacts(self.recorder))
                    self._artifact_failed(e)
                else:
                    uri = self.client.tracking_uri
                    self._note_full(e, sqlite_path(uri) or uri)
                    self._go_offline(e)
        self._keep(kind, payload)

    def _note_full(self, error: BaseException, where: Path | str | None) -> None:
        """Notes the first full disk: the file the error names, else `where` (the store,
        the artifact folder), else the output folder."""
        if self.full_disk is None and no_space(error):
            place = path_of(error) or where or self.output_dir
            self.full_disk = str(mount_of(place) if isinstance(place, Path) else place)

    def _artifact_failed(self, error: Exception) -> None:
        if self.artifact_failure is None:
            self.artifact_failure = f"artifact store: {replay.one_line(error)}"
            log.warning(
                "artifact store of run %s failed (%s); metrics and the run's status still go "
                "to %s, artifacts are kept in %s",
                self.run_id,
                self.artifact_failure,
                self.client.tracking_uri,
                self.output_dir / kept_records.UNSENT_FILE,
            )

    def _go_offline(self, error: Exception) -> None:
        self.failure = replay.one_line(error)
        self._next_try = time.monotonic() + self.retry_seconds
        log.warning(
            "tracking store %s failed (%s); training goes on without it, what is not sent "
            "is kept in %s, and the store is tried again every %.0f s",
            self.client.tracking_uri,
            self.failure,
            self.output_dir / kept_records.UNSENT_FILE,
            self.retry_seconds,
        )

    def _try_again(self) -> None:
        """Once the retry interval has passed: send what was kept, in order; online again
        only if all of it (but artifacts the artifact store refuses) went out."""
        if time.monotonic() < self._next_try:
            return
        sent = 0
        for folder in self.folders:
            sent += replay.replay(folder, lambda record: self.recorder).sent
            stuck = [
                r for _, r in kept_records.pending(folder) if r["kind"] not in replay.ARTIFACT_KINDS
            ]
            if stuck:  # the later folder's records must wait for these
                self._next_try = time.monotonic() + self.retry_seconds
                return
        log.info(
            "tracking store %s answers again: %d kept records sent",
            self.client.tracking_uri,
            sent,
        )
        self.failure = None

    def _keep(self, kind: str, payload: dict[str, Any]) -> None:
        record = {
            "kind": kind,
            "time_ms": int(time.time() * 1000),
            "run_id": self.run_id,
            "tracking_uri": self.client.tracking_uri,
            **payload,
        }
        if not self._records_spilled:
            try:
                kept_records.keep(self.output_dir, record)
                return
            except OSError as e:
                self.note_write_failure("the run's records", e, self.output_dir)
        try:
            kept_records.keep(self.spill_folder(), record)
            if not self._records_spilled:
                # From now on, all of them: a replay reads the output folder, then this.
                self._records_spilled = True
                log.warning(
                    "the output folder %s cannot take the run's records: they go to %s",
                    self.output_dir,
                    self.spill,
                )
        except OSError as e:
            self._note_full(e, None)
            if not self.lost:
                log.error(
                    "a record of run %s can be kept nowhere (%s); the run's end line counts "
                    "what was lost",
                    self.run_id,
                    replay.one_line(e),
                )
            self.lost += 1
