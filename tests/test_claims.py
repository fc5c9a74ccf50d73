"""One configuration runs once, one output folder holds one run: the same sweep started
twice at once, runs that Hydra sends into one folder, a claim held by another process."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.compose import FAST
from helpers.sweeps import TINY

from experiments import claims
from experiments.processes import child_environment


def test_an_output_folder_owned_by_a_run_sends_the_next_run_to_a_sibling(workspace):
    """Before: both runs wrote outputs/run (history.csv held both runs' rows)."""
    assert workspace.train(*FAST, "training.epochs=1") == 0
    assert workspace.train(*FAST, "training.epochs=2") == 0
    first, second = workspace.runs()
    folders = [Path(r.data.tags["output_dir"]) for r in (first, second)]
    assert folders == [workspace.folder / "outputs/run", workspace.folder / "outputs/run-2"]
    for run, folder, epochs in zip((first, second), folders, (1, 2), strict=True):
        with open(folder / "history.csv") as f:
            assert len(list(csv.DictReader(f))) == epochs
        owner = claims.Claim(folder / claims.FOLDER_CLAIM).holder()
        assert owner["run_id"] == run.info.run_id
        assert (folder / "resolved_config.yaml").is_file()


def test_a_folder_claimed_by_a_live_process_is_left_to_it(tmp_path, caplog):
    folder = tmp_path / "0"
    folder.mkdir()
    other = claims.Claim(folder / claims.FOLDER_CLAIM)  # another open file: flock conflicts
    assert other.try_take()
    other.note()  # no run open yet: the folder is still its claimant's
    log_file = folder / "train.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        with caplog.at_level(logging.WARNING, logger="experiments.claims"):
            chosen, mine = claims.own_output_folder(folder)
        logging.getLogger().info("after the move")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        mine.release()
        other.release()
    assert chosen == tmp_path / "0-2"
    assert f"output folder {folder} belongs to process" in caplog.text
    # The job's log follows the run into its own folder.
    assert handler.baseFilename == str(chosen / "train.log")


def test_a_claimed_configuration_waits_for_its_holder_then_is_taken(tmp_path, caplog):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    holder = claims.config_claim(store, "1", "abc")
    released_at = []

    def release_later():
        time.sleep(0.5)
        released_at.append(time.monotonic())
        holder.release()

    threading.Thread(target=release_later).start()
    with caplog.at_level(logging.INFO, logger="experiments.claims"):
        mine = claims.config_claim(store, "1", "abc")
    taken_at = time.monotonic()
    mine.release()
    assert released_at and taken_at >= released_at[0]
    assert "configuration abc is being run by process" in caplog.text
    assert "waiting for it to end" in caplog.text
    # The same configuration in another experiment is another claim: taken at once.
    held = [claims.config_claim(store, "1", "abc"), claims.config_claim(store, "2", "abc")]
    assert all(claim.held for claim in held)


@pytest.mark.slow
def test_the_same_sweep_started_twice_at_once_runs_each_configuration_once(workspace):
    """Before: two runs of the configuration, both in one output folder (history.csv held
    both runs' rows). The process that waits skips its job before TensorFlow starts."""
    sweep = ["-m", *TINY, "training.epochs=1", "diagnostics.plots=false",
             f"hydra.sweep.dir={workspace.folder / 'sw'}", "activation=relu"]  # fmt: skip
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "experiments.train", *sweep],
            cwd=workspace.folder,
            env=child_environment(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in started]
    assert [p.returncode for p in started] == [0, 0], outputs
    runs = workspace.runs()
    parents = [r for r in runs if r.data.tags.get("sweep") == "true"]
    (job,) = [r for r in runs if r.data.tags.get("sweep") != "true"]
    assert len(parents) == 2 and job.info.status == "FINISHED"
    with open(Path(job.data.tags["output_dir"]) / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == 1
    # One sweep ran the job; the other waited for it, said so, and skipped it.
    counts = sorted(
        (p.data.metrics["children_finished"], p.data.metrics["children_skipped"]) for p in parents
    )
    assert counts == [(0, 1), (1, 0)]
    (waited,) = [out for out in outputs if "waiting for it to end" in out]
    assert "skipped: this config already FINISHED" in waited
