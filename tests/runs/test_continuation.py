"""A run stopped after an epoch continues from its checkpoint in the same MLflow run,
with the result of a run that never stopped; a checkpoint that cannot be used is dropped
with one line; a checkpoint is never read for another configuration. In-process runs of
the real entry point (a stop is Ctrl-C's KeyboardInterrupt, raised after an epoch's
checkpoint); the SIGKILL of a real process is in tests/runs/test_killed_run.py."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from helpers.compose import FAST
from helpers.continued import assert_same_training
from helpers.workspace import Workspace

from experiments.core import names
from experiments.runs import continuation
from experiments.tracking.session import RunSession
from experiments.training.checkpoint import Checkpoint, CheckpointCallback
from experiments.training.settings import TrainingConfig

# Batch norm and a plateau schedule: moving statistics, a callback's state, and a
# learning rate that the callback may lower all have to come back.
RUN = [*FAST, "training.epochs=4", "training.checkpoint=true", "normalization=batchnorm"]
RUN += ["schedule=performance", "schedule.patience=1", "schedule.factor=0.5"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The run of RUN that never stopped: its store's client and the run."""
    workspace = Workspace(tmp_path_factory.mktemp("straight"))
    assert workspace.train(*RUN) == 0
    (run,) = workspace.runs()
    return workspace.client(), run


@pytest.fixture
def stop_after_epoch(monkeypatch):
    """`stop_after_epoch(n)`: the next run stops (as on Ctrl-C) once epoch n's checkpoint
    is written and its metrics sent."""

    def arm(epoch: int) -> None:
        original = CheckpointCallback.on_epoch_end

        def on_epoch_end(self, index, logs=None):
            original(self, index, logs)
            if self.epochs_done == epoch:
                monkeypatch.setattr(CheckpointCallback, "on_epoch_end", original)
                raise KeyboardInterrupt("stopped for the test")

        monkeypatch.setattr(CheckpointCallback, "on_epoch_end", on_epoch_end)

    return arm


def starting_over(output: str) -> list[str]:
    """The lines of the entry point's log that say a run starts over, without the
    logger's time and name."""
    return [line.split(" - ", 1)[1] for line in output.splitlines() if "starting over" in line]


def test_a_stopped_run_continues_in_the_same_run_with_the_uninterrupted_result(
    workspace, stop_after_epoch, straight
):
    straight_client, straight = straight
    stop_after_epoch(2)
    assert workspace.train(*RUN) == 130
    (stopped,) = workspace.runs()
    checkpoint = Path(stopped.data.tags[names.CHECKPOINT_TAG])
    assert stopped.info.status == "KILLED" and checkpoint.is_file()

    assert workspace.train(*RUN) == 0
    (continued,) = workspace.runs()  # the same run, not a second one
    assert continued.info.run_id == stopped.info.run_id
    assert continued.info.status == "FINISHED"
    tags = continued.data.tags
    assert tags[names.CONTINUATIONS_TAG] == "1" and tags[names.CONTINUED_FROM_TAG] == "2"
    assert names.FAILURE_REASON_TAG not in tags  # the stop is not how it ended
    assert names.CHECKPOINT_TAG not in tags and not checkpoint.exists()
    assert tags[names.HEALTH_TAG] == straight.data.tags[names.HEALTH_TAG]
    assert_same_training(workspace.client(), continued, straight, straight_client)
    assert continued.data.metrics["test_accuracy"] == straight.data.metrics["test_accuracy"]


@pytest.mark.parametrize(
    "where", ["after the last epoch", "after the test metrics", "after the model"]
)
def test_a_run_stopped_after_its_last_epoch_only_ends(
    workspace, stop_after_epoch, monkeypatch, where, straight
):
    if where == "after the last epoch":
        stop_after_epoch(4)
    else:  # the model is saved after the test metrics are logged
        original = RunSession.log_trained_model

        def stop(self, *args):
            monkeypatch.setattr(RunSession, "log_trained_model", original)
            if where == "after the model":
                original(self, *args)
            raise KeyboardInterrupt("stopped for the test")

        monkeypatch.setattr(RunSession, "log_trained_model", stop)
    assert workspace.train(*RUN) == 130
    assert workspace.train(*RUN) == 0
    (continued,) = workspace.runs()
    assert continued.info.status == "FINISHED"
    assert continued.data.tags[names.CONTINUED_FROM_TAG] == "4"
    assert_same_training(workspace.client(), continued, straight[1], straight[0])
    models = workspace.client().search_logged_models(
        [continued.info.experiment_id], filter_string=f"source_run_id = '{continued.info.run_id}'"
    )
    assert len(models) == 1  # logged once, whichever process logged it


@pytest.mark.parametrize("damage", ["damaged", "missing"])
def test_a_checkpoint_that_cannot_be_used_starts_over_with_one_line(
    workspace, stop_after_epoch, capsys, damage
):
    stop_after_epoch(1)
    assert workspace.train(*RUN) == 130
    (stopped,) = workspace.runs()
    checkpoint = Path(stopped.data.tags[names.CHECKPOINT_TAG])
    if damage == "damaged":
        checkpoint.write_bytes(checkpoint.read_bytes()[:-200])
    else:
        checkpoint.unlink()
    capsys.readouterr()
    assert workspace.train(*RUN) == 0
    (line,) = starting_over(capsys.readouterr().out)
    assert line.startswith(f"starting over: run {stopped.info.run_id} cannot be continued")
    assert str(checkpoint) in line and "\n" not in line
    assert ("is damaged" if damage == "damaged" else "cannot be read") in line
    old, new = workspace.runs()
    assert old.info.run_id == stopped.info.run_id and old.info.status == "KILLED"
    assert names.CHECKPOINT_TAG not in old.data.tags  # never tried again
    assert new.info.status == "FINISHED" and names.CONTINUATIONS_TAG not in new.data.tags


def test_a_file_naming_another_configuration_is_refused(workspace, stop_after_epoch, capsys):
    """Another seed is another configuration: the default seed's run does not continue
    the stopped run of seed 7, and a run whose tag points at seed 7's checkpoint (a
    copied folder, an edited tag) starts over: the file's own digest and run must match."""
    stop_after_epoch(1)
    assert workspace.train(*RUN, "training.seed=7") == 130
    stop_after_epoch(1)
    assert workspace.train(*RUN) == 130
    first, second = workspace.runs()
    assert names.CONTINUATIONS_TAG not in second.data.tags
    client = workspace.client()
    client.set_tag(second.info.run_id, names.CHECKPOINT_TAG, first.data.tags[names.CHECKPOINT_TAG])
    capsys.readouterr()
    assert workspace.train(*RUN) == 0
    (line,) = starting_over(capsys.readouterr().out)
    assert f"belongs to run {first.info.run_id}" in line and "starting over" in line
    assert len(workspace.runs()) == 3


@pytest.mark.parametrize(
    ("checkpoint", "launcher", "expected"),
    [
        (None, "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", True),
        (None, "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", True),
        (None, "hydra._internal.core_plugins.basic_launcher.BasicLauncher", False),
        (None, "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", False),
        (False, "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", False),
        (True, "hydra._internal.core_plugins.basic_launcher.BasicLauncher", True),
    ],
)
def test_checkpoints_are_on_by_default_under_the_cluster_launchers(checkpoint, launcher, expected):
    assert continuation.wanted(TrainingConfig(checkpoint=checkpoint), launcher) is expected


def test_a_sweep_run_again_continues_its_stopped_job_under_the_new_parent(
    workspace, stop_after_epoch
):
    stop_after_epoch(1)
    assert workspace.train("-m", *RUN) == 130
    assert workspace.train("-m", *RUN) == 0
    runs = workspace.runs()
    first, second = [r for r in runs if r.data.tags.get(names.SWEEP_TAG) == "true"]
    (job,) = [r for r in runs if names.SWEEP_TAG not in r.data.tags]
    assert first.info.status == "KILLED" and second.info.status == "FINISHED"
    assert job.info.status == "FINISHED" and job.data.tags[names.CONTINUED_FROM_TAG] == "1"
    # The sweep that finished it counts it and reports it.
    assert job.data.tags[names.PARENT_TAG] == second.info.run_id
    assert second.data.metrics["children_finished"] == 1


def test_a_continued_runs_system_metrics_go_on_after_the_earlier_steps(workspace, stop_after_epoch):
    sampled = [*RUN, "tracking.system_metrics=true", "tracking.system_metrics_interval=0.2"]
    stop_after_epoch(2)
    assert workspace.train(*sampled) == 130
    assert workspace.train(*sampled) == 0
    (run,) = workspace.runs()
    client = workspace.client()
    system = [key for key in run.data.metrics if key.startswith("system/")]
    assert system
    for key in system:
        steps = Counter(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert max(steps.values()) == 1, f"{key} has a step twice"


def test_an_epoch_written_to_the_history_but_not_checkpointed_is_in_it_once(workspace, monkeypatch):
    """Stopped after Keras' CSV logger wrote epoch 2's row, before its checkpoint: the
    continued run trains epoch 2 again and history.csv still has each epoch once."""
    original = Checkpoint.write

    def write(self, path):
        if self.epoch == 3:
            monkeypatch.setattr(Checkpoint, "write", original)
            raise KeyboardInterrupt("stopped for the test")
        original(self, path)

    monkeypatch.setattr(Checkpoint, "write", write)
    assert workspace.train(*RUN) == 130
    assert workspace.train(*RUN) == 0
    (run,) = workspace.runs()
    assert run.data.tags[names.CONTINUED_FROM_TAG] == "2"
    with open(Path(run.data.tags[names.OUTPUT_DIR_TAG]) / "history.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2, 3]
