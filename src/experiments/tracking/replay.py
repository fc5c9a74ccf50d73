"""Records a run could not send, kept in its output folder, and sending them later.

`unsent_records.jsonl` holds one JSON record per line, in the order the run made them:
params, metrics (with the time they were measured), tags, artifacts and the run's end,
each naming its run and tracking store. `unsent_records.synced` lists the lines that have
reached the store since. Replaying is idempotent: a line already sent is skipped, and a
metric sent twice with its original time is kept once by MLflow.

Each record is appended whole or not at all: an append that fails (a full disk) is cut
back to where it started. A line cut by a crash mid-append (SIGKILL, a lost machine)
is set aside in `unsent_records.torn` with its line number, and reported; the complete
records around it are sent as usual.

When the output folder itself cannot take a record (its disk is full), the run keeps
its records in the temporary folder instead: `<tmp>/gradlab-unsent/<run id>/`, which
names the output folder it stands for (`output_dir`), so `sync <output folder>` finds
it. The temporary folder is the one of the process (`$TMPDIR`, else /tmp): a sync
started with another one is given that folder itself.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.tracking.uninterrupted import signals_held

UNSENT_FILE = "unsent_records.jsonl"
SYNCED_FILE = "unsent_records.synced"
TORN_FILE = "unsent_records.torn"
SPILL_DIR = "gradlab-unsent"
ORIGIN_FILE = "output_dir"
# Records that go to the artifact store, which can fail while the tracking store works.
ARTIFACT_KINDS = ("artifact", "model")
# Run tags: the artifacts the store lacks that are kept for `sync` (kept up to date by
# every replay), and why; the artifacts that could be written nowhere, and why.
MISSING_TAG = "missing_artifacts"
MISSING_REASON_TAG = "missing_artifacts_reason"
UNWRITTEN_TAG = "unwritten_artifacts"
UNWRITTEN_REASON_TAG = "unwritten_artifacts_reason"
# What SQLite (through MLflow) says when the disk under the store is full.
_FULL_WORDS = ("database or disk is full", "No space left on device", "Disk quota exceeded")


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


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def no_space(error: BaseException) -> bool:
    """Whether the error (or one it came from) is a full disk or quota: an OSError's
    ENOSPC or EDQUOT, or SQLite's 'database or disk is full' as MLflow passes it on."""
    for e in _chain(error):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if no_space_text(str(e)):
            return True
    return False


def no_space_text(message: str) -> bool:
    return any(words in message for words in _FULL_WORDS)


def path_of(error: BaseException) -> Path | None:
    """The file an OSError (or one it came from) names: a copy's destination first."""
    for e in _chain(error):
        if isinstance(e, OSError) and (e.filename2 or e.filename):
            return Path(os.fsdecode(e.filename2 or e.filename))
    return None


def mount_of(path: Path) -> Path:
    """The mount point of the file system that holds `path` (or would hold it)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


def keep(folder: Path, record: dict[str, Any]) -> None:
    """Appends the record as one line, whole or not at all (see `_append_line`)."""
    _append_line(folder / UNSENT_FILE, json.dumps(record, default=str).encode())


def _append_line(path: Path, line: bytes) -> None:
    """Appends `line` and a newline under the file's lock. An append that fails (a full
    disk, a quota) is cut back to the file's former end, then raises: no reader ever
    meets half a line written here. A line torn earlier (a crash mid-append) is ended
    first, so the new one never glues onto it."""
    data = line + b"\n"
    with signals_held():  # Ctrl-C between two write() calls would leave half a line
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # `read` must not take a line in the making for torn
            start = os.fstat(fd).st_size
            if start and os.pread(fd, 1, start - 1) != b"\n":
                data = b"\n" + data
            try:
                done = 0
                while done < len(data):  # a full disk can write part of it, then refuse
                    done += os.write(fd, data[done:])
            except BaseException:
                os.ftruncate(fd, start)  # shrinking a file needs no space
                raise
        finally:
            os.close(fd)  # and with it the lock


@dataclass
class Kept:
    """The records of a folder not yet in the store, as (line number, record); and one
    line for each torn line met in this reading."""

    records: list[tuple[int, dict[str, Any]]]
    torn: list[str]


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return None
    ok = isinstance(record, dict) and {"kind", "run_id", "tracking_uri"} <= record.keys()
    return record if ok else None


def read(folder: Path) -> Kept:
    """The folder's pending records. A line that is no whole record (cut by a crash
    mid-append) is copied to TORN_FILE with its line number, then blanked where it is:
    the file is changed in place, under the lock a running job appends under (a new
    file in its place would take the job's later appends away from it), and the
    numbers of the lines after it, which SYNCED_FILE refers to, stay as they were."""
    path = folder / UNSENT_FILE
    if not path.is_file():
        return Kept([], [])
    done = _synced(folder)
    try:
        fd = os.open(path, os.O_RDWR)  # not O_APPEND: Linux's pwrite would append
    except PermissionError:  # another user's folder: read it, change nothing
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as whole:
            lines = whole.read().split(b"\n")
        found, torn = [], []
        for number, line in enumerate(lines):
            if number in done or not line.strip():
                continue
            record = _record(line)
            if record is None:
                torn.append(number)
            else:
                found.append((number, record))
        return Kept(found, _set_aside(folder, fd, lines, torn) if torn else [])
    finally:
        os.close(fd)


def _set_aside(folder: Path, fd: int, lines: list[bytes], torn: list[int]) -> list[str]:
    """Each torn line copied to TORN_FILE, then blanked in the records file: spaces
    over it (a blank line is skipped, and overwriting needs no new space), or, for a
    last line with no newline, the file cut back to the line before."""
    path, aside = folder / UNSENT_FILE, folder / TORN_FILE
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    entries = [
        {"file": UNSENT_FILE, "line": n + 1, "text": lines[n].decode("utf-8", "backslashreplace")}
        for n in torn
    ]
    where = f"set aside in {aside}"
    try:
        already = set(aside.read_text().splitlines()) if aside.is_file() else set()
        for entry in entries:
            if json.dumps(entry) not in already:
                _append_line(aside, json.dumps(entry).encode())
        for n in torn:
            if n == len(lines) - 1:
                os.ftruncate(fd, offsets[n])
            else:
                os.pwrite(fd, b" " * len(lines[n]), offsets[n])
    except OSError as e:
        # Left where it is: it stays skipped, and is named again at the next reading.
        where = f"left in place, could not be set aside ({e.strerror or e})"
    return [f"{path}:{e['line']}: torn record (cut mid-write), {where}" for e in entries]


def torn_count(folder: Path) -> int:
    """How many torn lines of the folder were set aside so far."""
    aside = folder / TORN_FILE
    return len(aside.read_text().splitlines()) if aside.is_file() else 0


def pending(folder: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of every record not yet in the store."""
    return read(folder).records


def _synced(folder: Path) -> set[int]:
    path = folder / SYNCED_FILE
    return set(json.loads(path.read_text())) if path.is_file() else set()


def _mark(folder: Path, lines: set[int]) -> None:
    """Replaced whole (a full disk must not leave it empty: every line would then be
    read as unsent, and a truncated list cannot be read at all)."""
    path = folder / SYNCED_FILE
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(json.dumps(sorted(lines)))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def spill_root() -> Path:
    return Path(tempfile.gettempdir()) / SPILL_DIR


def spill_folder(run_id: str) -> Path:
    """Where a run keeps what its output folder cannot take (see the module's note)."""
    return spill_root() / run_id


def open_spill(run_id: str, output_dir: Path) -> Path:
    """The run's spill folder, made, naming the output folder it stands for."""
    folder = spill_folder(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    origin = folder / ORIGIN_FILE
    if not origin.is_file():
        try:
            origin.write_text(str(output_dir.resolve()))
        except OSError:
            origin.unlink(missing_ok=True)  # a cut name would send `sync` elsewhere
            raise
    return folder


def origin_of(folder: Path) -> Path | None:
    """The output folder a spill folder stands for (None for an output folder)."""
    try:
        text = (folder / ORIGIN_FILE).read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


def artifact_name(record: dict[str, Any]) -> str:
    """The artifact's path in the run, as the UI shows it ('model' for the model)."""
    if record["kind"] == "model":
        return "model"
    name = Path(record["path"]).name
    return f"{record['artifact_path']}/{name}" if record.get("artifact_path") else name


def missing_artifacts(run_id: str, folders: list[Path]) -> list[str]:
    """The run's artifacts that are kept in `folders` and not yet in the store."""
    return [
        artifact_name(record)
        for folder in folders
        for _, record in pending(folder)
        if record["run_id"] == run_id and record["kind"] in ARTIFACT_KINDS
    ]


def local_artifacts(recorder) -> Path | None:
    """The folder of the run's artifacts when its artifact store is a local one."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

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
    from experiments.tracking.recorder import FAILURE_REASON_TAG

    if FAILURE_REASON_TAG in recorder.client.get_run(recorder.run_id).data.tags:
        recorder.client.delete_tag(recorder.run_id, FAILURE_REASON_TAG)


def replay(folder: Path, recorder_for) -> Outcome:
    """Sends the folder's pending records in order, each through `recorder_for(record)`,
    the RunRecorder of its run; an artifact the artifact store refuses is skipped while
    the tracking store answers, any other failure stops the replay there. A run that
    got records has its MISSING_TAG brought up to date."""
    done = _synced(folder)
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
            _mark(folder, done)
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
    """MISSING_REASON_TAG: why the artifacts are not in the store, where they are kept,
    what sends them."""
    return (
        f"{why or 'not sent yet'}; kept in {', '.join(str(f) for f in folders)}: "
        "`python -m experiments.sync "
        f"{output_dir}` sends them"
    )


def _settle_missing(recorder, folders: list[Path], why: str | None) -> None:
    """MISSING_TAG lists the run's artifacts still kept; with none left, it and its
    reason go."""
    try:
        tags = recorder.client.get_run(recorder.run_id).data.tags
        left = ", ".join(missing_artifacts(recorder.run_id, folders))
        if left and tags.get(MISSING_TAG) != left:
            reason = missing_reason(why, folders, folders[0])
            if why and no_space_text(why):
                reason = f"no space left on device (ENOSPC): {reason}"
            recorder.set_tags({MISSING_TAG: left, MISSING_REASON_TAG: reason})
        for key in (MISSING_TAG, MISSING_REASON_TAG) if not left else ():
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
