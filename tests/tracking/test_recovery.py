"""Records a run could not send: an artifact store that fails costs artifacts only and
the exit code says so; `python -m experiments.sync` sends what was kept, once; runs
left RUNNING by a process that died are closed by the next command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.compose import FAST
from helpers.sweeps import TINY, history_rows
from helpers.waiting import wait_for

from experiments.processes import child_environment
from experiments.sync import main as sync_main
from experiments.tracking.kept_records import SYNCED_FILE, UNSENT_FILE
from experiments.tracking.orphans import ORPHAN_REASON

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def assert_metrics_equal_history(client, run, output_dir: Path) -> None:
    rows = history_rows(output_dir)
    for name in EPOCH_METRICS:
        logged = client.get_metric_history(run.info.run_id, name)
        assert sorted(m.step for m in logged) == list(range(len(rows))), name
        by_step = {m.step: m.value for m in logged}
        for step, row in enumerate(rows):
            assert by_step[step] == pytest.approx(float(row[name]), rel=1e-6), (name, step)


def test_a_failing_artifact_store_costs_artifacts_only_and_sync_sends_them(workspace, capsys):
    """Before, the first artifact failure sent every later record to the file too: the
    run stayed RUNNING with no metrics, and the command exited 0."""
    mlruns = workspace.folder / "mlruns"
    mlruns.write_text("a file where the artifact folder should be")
    assert workspace.train(*FAST, "training.epochs=2") == 3  # finished, records incomplete
    last = capsys.readouterr().err.strip().splitlines()[-1]
    (run,) = workspace.runs()
    client = workspace.client()
    output_dir = Path(run.data.tags["output_dir"])
    assert last.startswith(f"error: run {run.info.run_id} is incomplete")
    assert "artifact store" in last and f"python -m experiments.sync {output_dir}" in last
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    assert_metrics_equal_history(client, run, output_dir)
    kept = [json.loads(line) for line in (output_dir / UNSENT_FILE).read_text().splitlines()]
    assert {r["kind"] for r in kept} == {"artifact", "model"}  # files and the Logged Model

    mlruns.unlink()  # the artifact store is back
    assert sync_main([str(workspace.folder)]) == 0
    assert f"{len(kept)} records sent to run {run.info.run_id}" in capsys.readouterr().out
    artifacts = artifact_paths(client, run.info.run_id)
    assert {"config/resolved_config.yaml", "model_summary.txt"} <= artifacts
    (model,) = client.get_run(run.info.run_id).outputs.model_outputs  # sent once, later
    assert client.get_logged_model(model.model_id).source_run_id == run.info.run_id
    assert json.loads((output_dir / SYNCED_FILE).read_text()) == list(range(len(kept)))

    assert sync_main([str(workspace.folder)]) == 0  # twice sends nothing twice
    assert "nothing left to send" in capsys.readouterr().out
    assert artifact_paths(client, run.info.run_id) == artifacts


def test_sync_replays_kept_metrics_into_their_run_once(workspace, capsys):
    """Records kept while the store was away (written as the recorder writes them)
    reach their run, and the run ends with its true status; sending them again, or a
    metric twice, keeps each value once."""
    from experiments.tracking.kept_records import keep
    from experiments.tracking.recorder import RunRecorder

    client = workspace.client()
    experiment_id = client.create_experiment("offline")
    recorder = RunRecorder.start(client, experiment_id, "lost", {})
    folder = workspace.folder / "job"
    folder.mkdir()
    common = {"run_id": recorder.run_id, "tracking_uri": workspace.uri}
    for step in range(3):
        metrics = {"loss": 1.0 / (step + 1)}
        keep(
            folder,
            {"kind": "metrics", "step": step, "metrics": metrics, "time_ms": 1000 + step, **common},
        )
    keep(
        folder,
        {"kind": "metrics", "step": 2, "metrics": {"loss": 1.0 / 3}, "time_ms": 1002, **common},
    )
    keep(folder, {"kind": "tags", "tags": {"seed": "7"}, **common})
    keep(folder, {"kind": "end", "status": "FINISHED", "reason": None, **common})

    assert sync_main([str(workspace.folder)]) == 0
    assert sync_main([str(folder)]) == 0
    run = client.get_run(recorder.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["seed"] == "7"
    history = client.get_metric_history(recorder.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert "nothing left to send" in capsys.readouterr().out


@pytest.mark.slow
def test_runs_of_a_killed_sweep_are_closed_by_the_next_command(workspace):
    """SIGKILL leaves no chance to close a run: the sweep's parent and its running child
    stayed RUNNING for good. The next command on the store (here the report) closes both
    as FAILED, saying why; a run of a living process is left alone."""
    from experiments.report.__main__ import main as report_main

    sweep = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", "-m", *TINY, "training.epochs=100000",
         "data.train_size=4000", "activation=relu,tanh"],
        cwd=workspace.folder, env=child_environment(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def child_with_an_epoch():
            try:
                runs = workspace.runs()
            except Exception:  # noqa: BLE001 - the store may still be in the making
                return None
            children = [r for r in runs if "loss" in r.data.metrics]
            return children[0] if children else None

        child = wait_for(child_with_an_epoch, "the first job's first epoch", 120)
        living = workspace.client().create_run(
            child.info.experiment_id,
            run_name="alive",
            tags={"host": child.data.tags["host"], "pid": str(os.getpid())},
        )
        sweep.send_signal(signal.SIGKILL)
        sweep.wait(timeout=30)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    stale = {r.info.run_id: r for r in workspace.runs() if r.info.status == "RUNNING"}
    assert child.info.run_id in stale and len(stale) == 3  # parent, child, the living one

    report_main(["--tracking-uri", workspace.uri, "-o", str(workspace.folder / "report")])
    after = {r.info.run_id: r for r in workspace.runs()}
    parent_id = child.data.tags["mlflow.parentRunId"]
    for run_id in (parent_id, child.info.run_id):
        assert after[run_id].info.status == "FAILED"
        assert after[run_id].data.tags["failure_reason"] == ORPHAN_REASON
    assert after[living.info.run_id].info.status == "RUNNING"


@pytest.mark.slow
def test_a_server_stopped_and_started_again_mid_run_gets_every_record(tmp_path):
    """A real tracking server goes away twice during a run. Training goes on; while the
    run lasts, the recorder tries the server again and sends what it kept once the
    server is back; what is still kept when the run ends (here by SIGTERM, while the
    server is down) `python -m experiments.sync` sends. The run in MLflow then equals the
    run's history.csv, with its true status; a second sync sends nothing."""
    from helpers.sweeps import TrackingServer, free_port
    from mlflow.tracking import MlflowClient

    port = free_port()
    server = TrackingServer.start(tmp_path / "server", port=port)
    output_dir = tmp_path / "outputs" / "run"
    job = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", f"tracking.uri={server.uri}",
         f"hydra.run.dir={output_dir}", *TINY, "data.train_size=4000",
         "training.epochs=100000", "diagnostics.enabled=false", "tracking.log_model=false"],
        cwd=tmp_path, env=child_environment(GRADLAB_STORE_RETRY_SECONDS="1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = MlflowClient(server.uri)

    def on_server() -> int:
        try:
            runs = client.search_runs([client.get_experiment_by_name("gradient-lab").experiment_id])
            return len(client.get_metric_history(runs[0].info.run_id, "loss")) if runs else 0
        except Exception:  # noqa: BLE001 - the server may be down or the run not there yet
            return 0

    def epochs_trained() -> int:
        try:
            return len(history_rows(output_dir))
        except (OSError, KeyError):
            return 0

    try:
        wait_for(lambda: on_server() >= 1, "the first epoch on the server", 180)
        server.stop()
        trained = epochs_trained()
        wait_for(lambda: epochs_trained() >= trained + 2, "two epochs without the server", 120)
        server = TrackingServer.start(tmp_path / "server", port=port)
        caught_up = epochs_trained()
        wait_for(lambda: on_server() >= caught_up, "the kept epochs to reach the server", 120)
        server.stop()
        trained = epochs_trained()
        wait_for(lambda: epochs_trained() >= trained + 1, "an epoch without the server", 120)
        job.send_signal(signal.SIGTERM)
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
        server.stop()
    assert job.returncode == 130, err[-3000:]
    assert (output_dir / UNSENT_FILE).is_file()  # the end, at least, could not be sent

    server = TrackingServer.start(tmp_path / "server", port=port)
    try:
        assert sync_main([str(tmp_path / "outputs")]) == 0
        (run,) = client.search_runs([client.get_experiment_by_name("gradient-lab").experiment_id])
        assert run.info.status == "KILLED"
        assert run.data.tags["failure_reason"] == "interrupted (SIGTERM)"
        assert_metrics_equal_history(client, run, output_dir)
        assert sync_main([str(output_dir)]) == 0  # nothing left: nothing sent twice
        assert_metrics_equal_history(client, run, output_dir)
    finally:
        server.stop()
