"""Records a run could not send, kept in its output folder, and sending them later.

`unsent_records.jsonl` holds one JSON record per line, in the order the run made them:
params, metrics (with the time they were measured), tags, artifacts and the run's end,
each naming its run and tracking store. `unsent_records.synced` lists the lines that have
reached the store since. Replaying is idempotent: a line already sent is skipped, and a
metric sent twice with its original time is kept once by MLflow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNSENT_FILE = "unsent_records.jsonl"
SYNCED_FILE = "unsent_records.synced"
# Records that go to the artifact store, which can fail while the tracking store works.
ARTIFACT_KINDS = ("artifact", "model")


def one_line(error: Exception) -> str:
    """The error's type and its message, on one line."""
    message = " ".join(str(getattr(error, "message", None) or error).split())
    return f"{type(error).__name__}: {message[:300]}"


def store_answers(recorder) -> bool:
    """Whether the recorder's tracking store answers: after a failed artifact, tells the
    artifact store's fault (skip it, go on) from the tracking store's (stop)."""
    try:
        recorder.client.get_run(recorder.run_id)
        return True
    except Exception:  # noqa: BLE001 - any failure means the store does not answer
        return False


def keep(folder: Path, record: dict[str, Any]) -> None:
    with open(folder / UNSENT_FILE, "a") as out:
        out.write(json.dumps(record, default=str) + "\n")


def _synced(folder: Path) -> set[int]:
    path = folder / SYNCED_FILE
    return set(json.loads(path.read_text())) if path.is_file() else set()


def _mark(folder: Path, lines: set[int]) -> None:
    (folder / SYNCED_FILE).write_text(json.dumps(sorted(lines)))


def pending(folder: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of every record not yet in the store."""
    path = folder / UNSENT_FILE
    if not path.is_file():
        return []
    done = _synced(folder)
    found = []
    for number, line in enumerate(path.read_text().splitlines()):
        if number not in done and line.strip():
            found.append((number, json.loads(line)))
    return found


@dataclass
class Outcome:
    sent: int
    left: int
    error: str | None = None  # why the first record left could not be sent


def send_one(recorder, record: dict[str, Any]) -> None:
    """One record through a RunRecorder of its run."""
    kind = record["kind"]
    if kind == "params":
        recorder.log_params(record["params"])
    elif kind == "metrics":
        recorder.log_metrics(record["metrics"], record["step"], timestamp_ms=record.get("time_ms"))
    elif kind == "tags":
        recorder.set_tags(record["tags"])
    elif kind == "artifact":
        recorder.log_artifact(Path(record["path"]), record.get("artifact_path"))
    elif kind == "datasets":
        recorder.log_datasets(record["datasets"])
    elif kind == "model":
        recorder.log_model(Path(record["path"]), record["step"], record["linked_keys"])
    elif kind == "end":
        recorder.end(record["status"], record.get("reason"))
        if not record.get("reason"):
            _drop_stale_reason(recorder)
    else:
        raise ValueError(f"unknown record kind {kind!r}")


def _drop_stale_reason(recorder) -> None:
    """A run closed as FAILED while its records were away (its process had ended, see
    tracking.orphans) gets its true end: the stale reason goes too."""
    from experiments.tracking.recorder import FAILURE_REASON_TAG

    if FAILURE_REASON_TAG in recorder.client.get_run(recorder.run_id).data.tags:
        recorder.client.delete_tag(recorder.run_id, FAILURE_REASON_TAG)


def replay(folder: Path, recorder_for) -> Outcome:
    """Sends the folder's pending records in order, each through `recorder_for(record)`,
    the RunRecorder of its run; an artifact the artifact store refuses is skipped while
    the tracking store answers, any other failure stops the replay there."""
    done = _synced(folder)
    sent = 0
    error = None
    records = pending(folder)
    for number, record in records:
        recorder = None
        try:
            recorder = recorder_for(record)
            send_one(recorder, record)
        except Exception as e:  # noqa: BLE001 - whatever the store raises, the record stays kept
            error = one_line(e)
            if record["kind"] in ARTIFACT_KINDS and recorder and store_answers(recorder):
                continue
            break
        done.add(number)
        sent += 1
        _mark(folder, done)
    return Outcome(sent, len(records) - sent, error)


def unsent_folders(root: Path) -> Iterator[Path]:
    """Every folder under `root` (itself included) that keeps records of a run."""
    for path in sorted(root.rglob(UNSENT_FILE)):
        yield path.parent
