"""A launch folder on a disk that fills up mid-run (a small tmpfs, for real): the run
ends with one line that says so, the store shows that training finished and what is
missing, no half-written model is presented as one, and what was kept is sent once
space is freed."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from helpers.mounts import resize, tmpfs
from helpers.workspace import Workspace
from mlflow.entities import LoggedModelStatus

from experiments.core import names
from experiments.sync import main as sync_main
from experiments.tracking import kept_records
from experiments.tracking.recorder import RunRecorder
from experiments.tracking.resilient import ResilientRecorder
from experiments.tracking.spill import spill_folder
from experiments.tracking.store import TrackingError, open_store


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A 3 MB tmpfs as the launch folder; the temporary folder (where records go when
    the disk is full) elsewhere, with space."""
    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    with tmpfs(tmp_path / "disk", "3m") as disk:
        yield disk


def test_a_full_disk_ends_in_one_line_and_the_store_says_what_is_missing(small_disk, capsys):
    """Before: four chained `OSError: [Errno 28]` tracebacks (raised while keeping the
    unsent records, whose file ended up empty), the run left RUNNING, its Logged Model
    PENDING with a truncated model.keras, and nothing for `sync` to send."""
    workspace = Workspace(small_disk)
    code = workspace.train("data=synthetic", "training.epochs=1", "diagnostics.plots=false")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3, err[-5:]
    last = err[-1]
    assert (
        last.startswith("error: no space left on device (ENOSPC) on ") and str(small_disk) in last
    )
    assert "free space" in last and "python -m experiments.sync" in last
    assert not any(line.startswith("Traceback") for line in err)

    client = workspace.client()
    (run,) = workspace.runs()
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    assert "model" in run.data.tags["missing_artifacts"].split(", ")
    assert "ENOSPC" in run.data.tags["missing_artifacts_reason"]
    models = client.search_logged_models([run.info.experiment_id])
    assert models and all(m.status == LoggedModelStatus.FAILED for m in models)
    assert not run.outputs.model_outputs  # the run presents no model

    resize(small_disk, "64m")  # space is freed
    assert sync_main([str(small_disk)]) == 0
    run = client.get_run(run.info.run_id)
    assert "missing_artifacts" not in run.data.tags and run.info.status == "FINISHED"
    (output,) = run.outputs.model_outputs
    model = client.get_logged_model(output.model_id)
    assert model.status == LoggedModelStatus.READY
    # The model was kept in the output folder, or, where even that was full, the spill.
    homes = [Path(run.data.tags["output_dir"]), spill_folder(run.info.run_id)]
    kept = next(home / "model" for home in homes if (home / "model").is_dir())
    stored = Path(model.artifact_location.removeprefix("file://"))
    assert (stored / "data" / "model.keras").read_bytes() == (
        kept / "data" / "model.keras"
    ).read_bytes()


@pytest.fixture
def full_store(tmp_path, monkeypatch, small_disk):
    """A run in a store on the small disk, then the disk filled to its last byte."""
    workspace = Workspace(small_disk)
    client = workspace.client()
    recorder = RunRecorder.start(client, client.create_experiment("full"), "full", {})
    output_dir = small_disk / "outputs" / "run"
    output_dir.mkdir(parents=True)
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return workspace, recorder, output_dir, filler


def test_records_a_full_disk_refuses_go_to_the_temp_dir_and_sync_finds_them(full_store, capsys):
    """Neither the store (SQLite on the full disk) nor the output folder can take a
    record: they are kept in the temporary folder, the end line says where, and
    `sync <output folder>` finds and sends them once space is freed."""
    workspace, inner, output_dir, filler = full_store
    recorder = ResilientRecorder(inner, output_dir, retry_seconds=3600)
    recorder.log_metrics({"loss": 0.5}, step=0)
    recorder.set_tags({"seed": "3"})
    recorder.end("FINISHED")

    assert recorder.offline and recorder.unsent == 3
    spill = spill_folder(recorder.run_id)
    assert Path(tempfile.gettempdir()) in spill.parents
    assert len(kept_records.pending(spill)) == 3 and not kept_records.pending(output_dir)
    line = recorder.incomplete_reason()
    assert line.startswith("no space left on device (ENOSPC) on ")
    assert str(spill) in line and f"python -m experiments.sync {output_dir}" in line
    assert workspace.client().get_run(recorder.run_id).info.status == "RUNNING"

    os.unlink(filler)
    assert sync_main([str(output_dir)]) == 0
    assert f"3 records sent to run {recorder.run_id}" in capsys.readouterr().out
    run = workspace.client().get_run(recorder.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["seed"] == "3"
    assert run.data.metrics["loss"] == 0.5
    assert json.loads((spill / kept_records.SYNCED_FILE).read_text()) == [0, 1, 2]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs, for an artifact store or an output folder that fills up."""
    with tmpfs(tmp_path / "tiny", "64k") as disk:
        yield disk


def test_an_artifact_cut_short_is_removed_and_listed_missing_until_sync_sends_it(
    workspace, tiny_disk, capsys
):
    """A full artifact store (the tracking store elsewhere, working): the truncated copy
    MLflow left is removed, the run's tags list the artifact as missing, and `sync` sends
    it whole once there is space, then drops the tag."""
    client = workspace.client()
    experiment = client.create_experiment("tiny-artifacts", artifact_location=tiny_disk.as_uri())
    inner = RunRecorder.start(client, experiment, "big file", {})
    output_dir = workspace.folder / "outputs" / "run"
    output_dir.mkdir(parents=True)
    big = output_dir / "big.bin"
    big.write_bytes(os.urandom(200_000))
    recorder = ResilientRecorder(inner, output_dir)
    recorder.log_artifact(big, "plots")
    recorder.end("FINISHED")

    run = client.get_run(inner.run_id)
    assert run.info.status == "FINISHED" and not recorder.offline
    assert run.data.tags[names.MISSING_TAG] == "plots/big.bin"
    assert "ENOSPC" in run.data.tags[names.MISSING_REASON_TAG]
    assert not list(tiny_disk.rglob("big.bin"))  # no truncated copy listed as the artifact
    assert recorder.incomplete_reason().startswith(
        f"no space left on device (ENOSPC) on {tiny_disk}"
    )

    resize(tiny_disk, "1m")
    assert sync_main([str(output_dir)]) == 0
    run = client.get_run(inner.run_id)
    assert names.MISSING_TAG not in run.data.tags and names.MISSING_REASON_TAG not in run.data.tags
    (stored,) = tiny_disk.rglob("big.bin")
    assert stored.read_bytes() == big.read_bytes()


def test_files_the_output_folder_refuses_go_to_the_spill_folder_or_are_named(
    workspace, tiny_disk, tmp_path, monkeypatch
):
    """The output folder's disk is full: a file of the run is made in the spill folder
    and logged from there; where the spill folder is full too, it is named in the run's
    tags and the end line, and nothing half-written is left in either folder."""
    from experiments.tracking.session import RunSession

    client = workspace.client()
    experiment = client.create_experiment("full-output")
    (tiny_disk / "filler").write_bytes(b"\0" * 60_000)

    def summary(folder: Path) -> list[tuple[Path, str | None]]:
        path = folder / "model_summary.txt"
        path.write_bytes(b"x" * 20_000)
        return [(path, None)]

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "spare"))
    (tmp_path / "spare").mkdir()
    session = RunSession.open(client, experiment, "spilled", {}, tiny_disk / "out")
    session.log_made(summary, "model summary")
    session.end("FINISHED")
    assert session.spilled == ["model summary"] and not session.unwritten
    assert not (tiny_disk / "out" / "model_summary.txt").exists()
    assert [a.path for a in client.list_artifacts(session.run_id)] == ["model_summary.txt"]

    monkeypatch.setattr(tempfile, "tempdir", str(tiny_disk))  # the spill folder is full too
    session = RunSession.open(client, experiment, "unwritten", {}, tiny_disk / "out2")
    session.log_made(summary, "model summary")
    session.end("FINISHED")
    tags = client.get_run(session.run_id).data.tags
    assert (
        tags[names.UNWRITTEN_TAG] == "model summary"
        and "ENOSPC" in tags[names.UNWRITTEN_REASON_TAG]
    )
    assert "not written anywhere: model summary" in session.incomplete_reason()
    assert not list(tiny_disk.rglob("model_summary.txt"))


def test_a_model_left_pending_by_an_upload_that_never_ended_is_marked_failed(workspace, tmp_path):
    """A process killed mid-upload leaves its Logged Model PENDING with part of its
    files: the next upload of the run's model (the replay) marks it FAILED, with the
    reason, and deletes what it holds."""
    from mlflow.models import Model

    from experiments.tracking import logged_model

    client = workspace.client()
    experiment = client.create_experiment("pending")
    run = client.create_run(experiment)
    stale = client.create_logged_model(experiment, name="model", source_run_id=run.info.run_id)
    folder = tmp_path / "model"
    folder.mkdir()
    Model(artifact_path="model", run_id=run.info.run_id).save(str(folder / "MLmodel"))
    (folder / "weights.bin").write_bytes(b"w" * 1000)
    client.log_model_artifacts(stale.model_id, str(folder))  # then the process died

    model_id = logged_model.upload(client, run.info.run_id, folder, 0, [])
    assert client.get_logged_model(model_id).status == LoggedModelStatus.READY
    stale = client.get_logged_model(stale.model_id)
    assert stale.status == LoggedModelStatus.FAILED
    assert "never finished" in stale.tags["failure_reason"]
    assert not client.list_logged_model_artifacts(stale.model_id)


def test_a_store_that_cannot_be_created_on_a_full_disk_says_so(tmp_path):
    """Before: `cannot be used: ... database or disk is full (Background on this error
    at: https://sqlalche.me/...)`, naming neither the cause nor what to do."""
    with tmpfs(tmp_path / "tiny", "64k") as disk:
        with pytest.raises(TrackingError) as refused:
            open_store(f"sqlite:///{disk / 'mlflow.db'}")
    assert str(refused.value) == (
        f"tracking store {disk / 'mlflow.db'} cannot be written (no space left on device, "
        "ENOSPC): free space on its disk, or point tracking.uri at another store"
    )
