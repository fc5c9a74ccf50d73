"""Sending the records a run kept (tracking.kept_records, tracking.spill) to its store,
later: at the next try of a run whose store came back, or by `python -m experiments.sync`.
Replaying is idempotent: a line already sent is skipped, and a metric sent twice with its
original time is kept once by MLflow. A run that got records has its `missing_artifacts`
tag brought up to date.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from experiments.core import names
from experiments.tracking.kept_records import (
    SYNCED_FILE,
    UNSENT_FILE,
    mark_synced,
    pending,
    synced_lines,
)
from experiments.tracking.spill import no_space_text, origin_of, spill_folder, spill_root

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


def artifact_name(record: dict[str, Any]) -> str:
    """The artifact's path in the run, as the UI shows it ('model' for the model)."""
    if record["kind"] == "model":
        return "model"
    name = Path(record["path"]).name
    return f"{record['artifact_path']}/{name}" if record.get("artifact_path") else name


def missing_artifacts(run_id: str, folders: list[Path]) -> list[str]:
    """The run's artifacts that are kept in `folders` and not yet in the store."""
    return artifacts_among(run_id, [record for folder in folders for _, record in pending(folder)])


def artifacts_among(run_id: str, records: list[dict[str, Any]]) -> list[str]:
    """The names of the run's artifacts among kept records."""
    return [
        artifact_name(record)
        for record in records
        if record["run_id"] == run_id and record["kind"] in ARTIFACT_KINDS
    ]


def local_artifacts(recorder) -> Path | None:
    """The folder of the run's artifacts when its artifact store is a local one."""
    try:
        uri = urlparse(recorder.client.get_run(recorder.run_id).info.artifact_uri)
    except Exception:  # noqa: BLE001 - a store that does not answer: no folder to name
        return None
    return Path(url2pathname(uri.path)) if uri.scheme in ("", "file") else None


def drop_partial_artifact(recorder, record: dict[str, Any]) -> None:
    """After an artifact upload failed: the copy it left in a local artifact store, cut
    short (a full disk), is removed, so the run lists no truncated file; it stays kept
    for a later replay. MLflow has no call that deletes one artifact of a run, hence the
    file system; a remote store is left to itself."""
    if record["kind"] != "artifact":
        return  # a model's upload cleans up after itself (logged_model.upload)
    folder = local_artifacts(recorder)
    if folder is None:
        return
    source = Path(record["path"])
    stored = folder / (record.get("artifact_path") or "") / source.name
    try:
        if stored.is_file() and stored.stat().st_size != source.stat().st_size:
            stored.unlink()
    except OSError:
        return  # the partial copy stays; the replay overwrites it


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

    if names.FAILURE_REASON_TAG in recorder.client.get_run(recorder.run_id).data.tags:
        recorder.client.delete_tag(recorder.run_id, names.FAILURE_REASON_TAG)


def replay(folder: Path, recorder_for) -> Outcome:
    """Sends the folder's pending records in order, each through `recorder_for(record)`,
    the RunRecorder of its run; an artifact the artifact store refuses is skipped while
    the tracking store answers, any other failure stops the replay there. A run that
    got records has its `missing_artifacts` tag brought up to date."""
    done = synced_lines(folder)
    sent = 0
    error = None
    records = pending(folder)
    touched = {}
    for number, record in records:
        recorder = None
        try:
            recorder = recorder_for(record)
            send_one(recorder, record)
        except Exception as e:  # noqa: BLE001 - whatever the store raises, the record stays kept
            error = one_line(e)
            if record["kind"] in ARTIFACT_KINDS and recorder and store_answers(recorder):
                drop_partial_artifact(recorder, record)
                continue
            break
        touched[record["run_id"]] = recorder
        done.add(number)
        try:
            mark_synced(folder, done)
        except OSError as e:  # sent but not noted: sent again next time, which MLflow absorbs
            error = f"{folder / SYNCED_FILE} cannot be written: {one_line(e)}"
            break
        sent += 1
    for run_id, recorder in touched.items():
        _settle_missing(recorder, _folders_of(folder, run_id), error)
    return Outcome(sent, len(records) - sent, error)


def _folders_of(folder: Path, run_id: str) -> list[Path]:
    """Every folder that may keep records of the run: its output folder, its spill."""
    origin = origin_of(folder)
    return [origin if origin is not None else folder, spill_folder(run_id)]


def missing_reason(why: str | None, folders: list[Path], output_dir: Path) -> str:
    """The `missing_artifacts_reason` tag: why the artifacts are not in the store, where they are kept,
    what sends them."""
    return (
        f"{why or 'not sent yet'}; kept in {', '.join(str(f) for f in folders)}: "
        "`python -m experiments.sync "
        f"{output_dir}` sends them"
    )


def _settle_missing(recorder, folders: list[Path], why: str | None) -> None:
    """The `missing_artifacts` tag lists the run's artifacts still kept; with none left, it and its
    reason go."""
    try:
        tags = recorder.client.get_run(recorder.run_id).data.tags
        left = ", ".join(missing_artifacts(recorder.run_id, folders))
        if left and tags.get(names.MISSING_TAG) != left:
            reason = missing_reason(why, folders, folders[0])
            if why and no_space_text(why):
                reason = f"no space left on device (ENOSPC): {reason}"
            recorder.set_tags({names.MISSING_TAG: left, names.MISSING_REASON_TAG: reason})
        for key in (names.MISSING_TAG, names.MISSING_REASON_TAG) if not left else ():
            if key in tags:
                recorder.client.delete_tag(recorder.run_id, key)
    except Exception:  # noqa: BLE001 - a summary of the records: the next replay settles it
        return


def unsent_folders(root: Path) -> Iterator[Path]:
    """Every folder under `root` (itself included) that keeps records of a run, each
    followed by the spill folders that stand for it (their records came later)."""
    found = sorted({path.parent for path in root.rglob(UNSENT_FILE)})
    root = root.resolve()
    spills: dict[Path, list[Path]] = {}
    if spill_root().is_dir() and spill_root().resolve() not in (root, *root.parents):
        for spill in sorted(spill_root().iterdir()):
            origin = origin_of(spill)
            if origin is not None and (origin == root or root in origin.parents):
                spills.setdefault(origin, []).append(spill)
    for folder in found:
        yield folder
        yield from spills.pop(folder.resolve(), [])
    for rest in spills.values():
        yield from rest
