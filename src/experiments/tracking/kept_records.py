"""The records file of a run's output folder: what a run could not send yet.

`unsent_records.jsonl` holds one JSON record per line, in the order the run made them:
params, metrics (with the time they were measured), tags, artifacts and the run's end,
each naming its run and tracking store. `unsent_records.synced` lists the lines that have
reached the store since (tracking.replay sends them).

Each record is appended whole or not at all: an append that fails (a full disk) is cut
back to where it started. A line cut by a crash mid-append (SIGKILL, a lost machine)
is set aside in `unsent_records.torn` with its line number, and reported; the complete
records around it are read as usual.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.tracking.uninterrupted import signals_held

UNSENT_FILE = "unsent_records.jsonl"
SYNCED_FILE = "unsent_records.synced"
TORN_FILE = "unsent_records.torn"


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
    done = synced_lines(folder)
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


def synced_lines(folder: Path) -> set[int]:
    path = folder / SYNCED_FILE
    return set(json.loads(path.read_text())) if path.is_file() else set()


def mark_synced(folder: Path, lines: set[int]) -> None:
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
