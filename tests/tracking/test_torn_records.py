"""A records file cut by a crash mid-append: every complete record is still sent, the
torn line is reported (file and line) and set aside, never dropped; and the file is
written so that a failed append leaves no torn line behind."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from helpers.mounts import tmpfs

from experiments.sync import main as sync_main
from experiments.tracking import kept_records
from experiments.tracking.kept_records import UNSENT_FILE, keep
from experiments.tracking.recorder import RunRecorder

TORN_FILE = "unsent_records.torn"  # where torn lines are set aside


def kept_run(workspace, folder: Path) -> tuple[RunRecorder, dict]:
    client = workspace.client()
    recorder = RunRecorder.start(client, client.create_experiment("offline"), "kept", {})
    folder.mkdir(parents=True, exist_ok=True)
    return recorder, {"run_id": recorder.run_id, "tracking_uri": workspace.uri}


def test_a_torn_last_line_is_set_aside_and_every_complete_record_is_sent(workspace, capsys):
    """Before, json.loads of the torn line raised out of `sync` (a JSONDecodeError
    traceback) and none of the valid lines before it was sent."""
    folder = workspace.folder / "job"
    recorder, common = kept_run(workspace, folder)
    for step in range(3):
        keep(folder, {"kind": "metrics", "step": step, "metrics": {"loss": 1.0 + step},
                      "time_ms": 1000 + step, **common})  # fmt: skip
    keep(folder, {"kind": "end", "status": "FINISHED", "reason": None, **common})
    whole = (folder / UNSENT_FILE).read_bytes()
    torn = json.dumps({"kind": "tags", "tags": {"seed": "7"}, **common})[:40]
    (folder / UNSENT_FILE).write_bytes(whole + torn.encode())  # a crash cut the append

    assert sync_main([str(workspace.folder)]) == 0
    captured = capsys.readouterr()
    assert f"4 records sent to run {recorder.run_id}" in captured.out
    assert f"{folder / UNSENT_FILE}:5: torn record" in captured.err
    assert str(folder / TORN_FILE) in captured.err
    run = workspace.client().get_run(recorder.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["loss"] == 3.0

    (aside,) = [json.loads(line) for line in (folder / TORN_FILE).read_text().splitlines()]
    assert aside == {"file": UNSENT_FILE, "line": 5, "text": torn}
    assert (folder / UNSENT_FILE).read_bytes() == whole  # what is left reads whole

    assert sync_main([str(folder)]) == 0  # again: nothing twice, the torn line still named
    out = capsys.readouterr().out
    assert "nothing left to send" in out and f"1 torn line set aside in {folder / TORN_FILE}" in out
    assert len((folder / TORN_FILE).read_text().splitlines()) == 1


def test_a_torn_line_inside_the_file_keeps_the_numbers_of_the_lines_after_it(workspace, capsys):
    """The lines already sent are known by their numbers (unsent_records.synced): a torn
    line set aside leaves a blank line, so no number moves and nothing is sent twice."""
    folder = workspace.folder / "job"
    recorder, common = kept_run(workspace, folder)
    keep(folder, {"kind": "tags", "tags": {"a": "1"}, **common})
    (folder / UNSENT_FILE).write_bytes((folder / UNSENT_FILE).read_bytes() + b'{"kind": "ta')
    # The next append starts on a line of its own rather than gluing onto the torn one.
    keep(folder, {"kind": "tags", "tags": {"b": "2"}, **common})
    (folder / kept_records.SYNCED_FILE).write_text("[0]")  # the first line was sent already

    assert sync_main([str(folder)]) == 0
    captured = capsys.readouterr()
    assert "1 records sent" in captured.out and f"{UNSENT_FILE}:2: torn record" in captured.err
    tags = workspace.client().get_run(recorder.run_id).data.tags
    assert tags["b"] == "2" and "a" not in tags  # line 0 was not sent again
    assert (folder / UNSENT_FILE).read_text().splitlines()[1].strip() == ""  # blanked
    assert json.loads((folder / kept_records.SYNCED_FILE).read_text()) == [0, 2]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 KiB tmpfs: a file system that fills up for real."""
    with tmpfs(tmp_path / "disk", "16k") as disk:
        yield disk


def test_an_append_that_finds_the_disk_full_leaves_no_torn_line(tiny_disk):
    """Before, a failed append left part of its line in the file: the next reader met a
    torn record (or, on a page boundary, an empty file where records had been)."""
    folder = tiny_disk
    record = {"kind": "tags", "tags": {"x": "y" * 900}, "run_id": "r", "tracking_uri": "u"}
    appended = 0
    with pytest.raises(OSError) as full:
        for _ in range(100):
            keep(folder, record)
            appended += 1
    assert full.value.errno == errno.ENOSPC
    lines = (folder / UNSENT_FILE).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == appended > 0
    assert all(json.loads(line) == record for line in lines[:-1])
