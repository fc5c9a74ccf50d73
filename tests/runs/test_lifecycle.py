"""The run lifecycle's end for a trial the search pruned: judged like any run, its files
written where they can be, ended KILLED with its trial's tags (before, a pruned trial
skipped the verdict, tagged `unknown`, and wrote its files straight to the output folder,
so a full disk ended it FAILED)."""

from __future__ import annotations

import tempfile

from helpers.compose import typed
from helpers.mounts import tmpfs
from helpers.nets import build_net, hidden, synthetic_splits

from experiments.core import names
from experiments.runs import lifecycle

OVERRIDES = (*hidden([16, 16]), "activation=relu", "diagnostics.plots=false")


class PrunedTrial:
    pruned = True

    def __init__(self):
        self.told = 0

    def tell_pruned(self):
        self.told += 1
        return {names.TRIAL_STATE_TAG: names.TRIAL_PRUNED}, "pruned at epoch 0 by MedianPruner"


def train_one_epoch(session):
    from experiments.diagnostics.run import RunDiagnostics
    from experiments.training import loop as training

    splits = synthetic_splits("data.train_size=256", "data.test_size=64")
    _, model = build_net(*OVERRIDES, input_shape=splits.input_shape, num_classes=splits.num_classes)
    cfg = typed(*OVERRIDES, "training.epochs=1")
    diagnostics = RunDiagnostics.setup(
        model, splits.x_val, splits.y_val, cfg.diagnostics, "relu", 0, session.log_metrics
    )
    outcome = training.fit(
        model,
        splits,
        cfg.training,
        session.log_metrics,
        session.output_dir,
        extra_callbacks=diagnostics.callbacks,
    )
    return cfg, model, splits, outcome, diagnostics


def finish_pruned(workspace, output_dir, after_training=lambda: None):
    client = workspace.client()
    experiment = client.create_experiment("pruned")
    session = lifecycle.open_run(client, experiment, "trial", {}, output_dir)
    cfg, model, splits, outcome, diagnostics = train_one_epoch(session)
    after_training()
    trial = PrunedTrial()
    test = lifecycle.finish(
        session, model, outcome, splits, cfg.training, diagnostics=diagnostics, trial=trial
    )
    return client, session, test, trial


def test_a_pruned_trial_is_judged_and_keeps_its_curves_and_diagnostics(workspace):
    client, session, test, trial = finish_pruned(workspace, workspace.folder / "out")
    run = client.get_run(session.run_id)
    assert test is None and trial.told == 1
    assert run.info.status == "KILLED"
    assert run.data.tags[names.TRIAL_STATE_TAG] == names.TRIAL_PRUNED
    assert run.data.tags[names.FAILURE_REASON_TAG] == "pruned at epoch 0 by MedianPruner"
    assert run.data.tags[names.HEALTH_TAG] not in ("", "unknown")
    assert "test_accuracy" not in run.data.metrics
    logged = {a.path for a in client.list_artifacts(session.run_id, "diagnostics")}
    assert "diagnostics/diagnostics.json" in logged


def test_a_pruned_trial_on_a_full_disk_still_ends_killed_with_its_files_spilled(
    workspace, tmp_path, monkeypatch
):
    spare = tmp_path / "spare"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))  # where the spill folder goes
    with tmpfs(tmp_path / "tiny", "256k") as disk:

        def fill_the_disk():  # training is over: the files of the run's end find no room
            with open(disk / "filler", "wb", buffering=0) as filler:
                try:
                    while True:
                        filler.write(b"\0" * 4096)
                except OSError:
                    pass

        client, session, _, trial = finish_pruned(workspace, disk / "out", fill_the_disk)
        run = client.get_run(session.run_id)
        assert run.info.status == "KILLED" and trial.told == 1
        assert run.data.tags[names.HEALTH_TAG] not in ("", "unknown")
        assert "diagnostics files" in session.spilled
        assert not list((disk / "out").rglob("diagnostics.json"))
    logged = {a.path for a in client.list_artifacts(session.run_id, "diagnostics")}
    assert "diagnostics/diagnostics.json" in logged
