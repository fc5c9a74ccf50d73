"""End-to-end runs of the real entry point, in-process, on the synthetic set, into a
real MLflow store in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.compose import FAST
from mlflow.entities import LoggedModelStatus

from experiments.tracking.store import tracking_uri
from experiments.training.one_cycle import OneCycle

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "lr")


def history(client, run, metric) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric))


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_a_run_records_params_metrics_tags_and_artifacts(workspace):
    assert workspace.train(*FAST, "training.epochs=3", "activation=elu") == 0
    (run,) = workspace.runs()
    client = workspace.client()
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("elu-he_normal-none-none-sgd")
    assert "training.epochs=3" in run.info.run_name

    params = run.data.params
    assert params["activation.name"] == "elu" and params["activation.alpha"] == "1.0"
    assert params["optimizer.learning_rate"] == "0.05" and params["training.epochs"] == "3"
    assert params["model.hidden"] == "[300, 100]" and params["data.name"] == "synthetic"
    assert "activation.negative_slope" not in params  # fields elu does not use are left out
    assert float(params["optimizer_config.learning_rate"]) == pytest.approx(0.05)

    for metric in EPOCH_METRICS:
        steps = history(client, run, metric)
        assert [step for step, _ in steps] == [0, 1, 2], metric
    assert history(client, run, "val_accuracy")[-1][1] == run.data.metrics["val_accuracy"]
    assert [v for _, v in history(client, run, "lr")] == pytest.approx([0.05] * 3)  # constant
    assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0 and run.data.metrics["test_loss"] > 0
    assert run.data.metrics["val_accuracy"] > 0.5  # it learned: chance is 0.1

    tags = run.data.tags
    assert tags["choice.activation"] == "elu" and tags["choice.init"] == "he_normal"
    assert tags["seed"] == "42" and tags["git_commit"]
    assert Path(tags["output_dir"]).is_dir()

    artifacts = artifact_paths(client, run.info.run_id)
    assert artifacts >= {
        "config/resolved_config.yaml", "config/overrides.yaml", "model_summary.txt",
        "plots/learning_curves.png",
    }  # fmt: skip
    local = Path(client.download_artifacts(run.info.run_id, "", str(workspace.folder / "dl")))
    assert (local / "plots/learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "activation=elu" in (local / "config/overrides.yaml").read_text()
    assert "hidden_01_act" in (local / "model_summary.txt").read_text()
    (output,) = run.outputs.model_outputs  # the model is the run's Logged Model
    assert output.step == 2
    logged = client.get_logged_model(output.model_id)
    assert logged.source_run_id == run.info.run_id and logged.status == LoggedModelStatus.READY


def test_the_store_lands_in_the_launch_folder_with_absolute_paths(fresh_workspace):
    workspace = fresh_workspace
    assert not (workspace.folder / "mlflow.db").exists()
    assert workspace.train(*FAST, "training.epochs=1") == 0
    assert (workspace.folder / "mlflow.db").is_file()
    experiment = workspace.client().get_experiment_by_name("gradient-lab")
    assert experiment.artifact_location == (workspace.folder / "mlruns").as_uri()
    assert (workspace.folder / "mlruns").is_dir()


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    assert tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking_uri("sqlite:///sub/x.db", tmp_path) == f"sqlite:///{tmp_path / 'sub/x.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri(None, tmp_path) == "http://127.0.0.1:5999"
    assert tracking_uri("sqlite:////abs/y.db", tmp_path) == "sqlite:////abs/y.db"


def test_experiment_name_and_uri_come_from_config(fresh_workspace, tmp_path):
    workspace = fresh_workspace
    elsewhere = tmp_path / "other.db"
    assert workspace.train(*FAST, "training.epochs=1", "tracking.experiment=mine",
                           f"tracking.uri=sqlite:///{elsewhere}") == 0  # fmt: skip
    assert elsewhere.is_file() and not (workspace.folder / "mlflow.db").exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{elsewhere}")
    experiment = client.get_experiment_by_name("mine")
    assert len(client.search_runs([experiment.experiment_id])) == 1


@pytest.mark.slow
def test_same_config_and_seed_reproduce_the_same_epoch_metrics(workspace):
    # A small set and no saved model: what is compared is every epoch's metrics.
    small = (*FAST, "data.train_size=1024", "data.test_size=256", "tracking.log_model=false")
    assert workspace.train(*small) == 0
    assert workspace.train(*small) == 0
    assert workspace.train(*small, "training.seed=7") == 0
    first, second, other_seed = workspace.runs()
    client = workspace.client()
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert history(client, first, metric) == history(client, second, metric), metric
    assert history(client, first, "loss") != history(client, other_seed, "loss")


def test_exploding_training_stops_at_once_and_the_run_ends_failed(workspace):
    code = workspace.train(*FAST, "training.epochs=5", "init=random_normal", "init.stddev=10")
    assert code == 0  # an explosion is a result, not a crash
    (run,) = workspace.runs()
    assert run.info.status == "FAILED"
    assert run.data.tags["failed_epoch"] == "0"
    assert (
        "non-finite" in run.data.tags["failure_reason"]
        and "epoch 0" in run.data.tags["failure_reason"]
    )
    client = workspace.client()
    assert len(history(client, run, "loss")) == 1  # stopped in the first epoch, not after five
    artifacts = artifact_paths(client, run.info.run_id)
    assert "config/resolved_config.yaml" in artifacts
    assert not run.outputs.model_outputs  # no model of a run that blew up
    assert "test_accuracy" not in run.data.metrics


def test_bad_data_ends_the_run_failed_with_the_reason_and_one_line(workspace, capsys):
    folder = workspace.folder / "broken"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    assert workspace.train(f"data.dir={folder}") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "train-images-idx3-ubyte.gz" in err[-1]
    (run,) = workspace.runs()
    assert run.info.status == "FAILED"
    assert "train-images-idx3-ubyte.gz" in run.data.tags["failure_reason"]
    assert "data.dir" in run.data.params  # what was recorded before the failure stays


def test_invalid_config_records_nothing_and_exits_2(workspace, capsys):
    assert workspace.train(*FAST, "model.hidden=[10,-1]") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: model.hidden[1]=-1 is not allowed: layer sizes must be >= 1"
    )
    assert workspace.runs() == []


@pytest.mark.slow
@pytest.mark.xdist_group("small_sweep")
def test_multirun_makes_one_parent_and_a_child_per_job(small_sweep):
    runs = small_sweep.runs()
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    (parent,) = parents
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep"] == "true"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.params["activation.name"] for c in children} == {"relu", "tanh"}
    assert (
        parent.data.metrics["children_finished"] == 2
        and parent.data.metrics["children_failed"] == 0
    )


@pytest.mark.slow
def test_in_a_multirun_an_exploding_job_fails_alone(workspace):
    code = workspace.train(
        "-m", *FAST, "training.epochs=2", "init=random_normal", "init.stddev=10,0.05"
    )
    assert code == 0
    runs = workspace.runs()
    children = {
        r.data.params["init.stddev"]: r for r in runs if "mlflow.parentRunId" in r.data.tags
    }
    assert children["10.0"].info.status == "FAILED"
    assert children["0.05"].info.status == "FINISHED"
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert (
        parent.data.metrics["children_failed"] == 1
        and parent.data.metrics["children_finished"] == 1
    )


@pytest.mark.slow
def test_a_single_run_after_a_sweep_is_not_nested(workspace):
    assert workspace.train("-m", *FAST, "training.epochs=1", "activation=relu") == 0
    assert workspace.train(*FAST, "training.epochs=1") == 0
    last = workspace.runs()[-1]
    assert "mlflow.parentRunId" not in last.data.tags


def test_local_history_is_kept_beside_the_job_outputs(workspace):
    assert workspace.train(*FAST, "training.epochs=2") == 0
    (run,) = workspace.runs()
    out = Path(run.data.tags["output_dir"])
    lines = (out / "history.csv").read_text().strip().splitlines()
    assert lines[0].split(",")[0] == "epoch" and len(lines) == 3
    assert (out / "model" / "MLmodel").is_file()  # the model, in MLflow's Keras format
    reloaded = keras.models.load_model(out / "model" / "data" / "model.keras")
    assert np.isfinite(keras.ops.convert_to_numpy(reloaded.get_layer("hidden_01").kernel)).all()


@pytest.mark.slow
def test_a_run_that_explodes_at_its_first_step_logs_no_made_up_loss(workspace):
    """A 50-layer net drawn from N(0, 1) overflows in its first forward pass: no step is
    applied, so the epoch has no measured training loss but a non-finite one; Keras'
    empty running mean used to be logged as loss 0.0."""
    code = workspace.train(
        *FAST, "model.hidden=[64]", "model.repeat=49", "model.repeat_width=64",
        "init=random_normal", "init.stddev=1.0", "activation=relu",
    )  # fmt: skip
    assert code == 0
    (run,) = workspace.runs()
    assert run.info.status == "FAILED" and "step 0" in run.data.tags["failure_reason"]
    losses = [m.value for m in workspace.client().get_metric_history(run.info.run_id, "loss")]
    accuracies = workspace.client().get_metric_history(run.info.run_id, "accuracy")
    assert all(not np.isfinite(v) for v in losses)  # what was measured, never 0.0
    assert accuracies == []


def test_a_residual_net_on_a_schedule_records_its_rate_and_reads_like_a_plain_net(workspace):
    overrides = ["model.hidden=[32,32,32]", "model.residual=true", "schedule=one_cycle"]
    assert workspace.train(*FAST, *overrides) == 0
    (run,) = workspace.runs()
    client = workspace.client()
    assert run.info.status == "FINISHED"
    assert run.data.params["schedule.name"] == "one_cycle"
    assert run.data.params["model.residual"] == "True"
    # The rate of each epoch's first step: 1cycle over 2 epochs of 16 steps (512 images,
    # batch 32), from 0.05 / 10 at step 0 to its peak at step 14.4, down again by step 16.
    cycle = OneCycle(0.005, 0.05, 5e-6, total_steps=32, annealing_steps=3)
    rates = [v for _, v in history(client, run, "lr")]
    assert rates == pytest.approx([float(cycle(0)), float(cycle(16))])
    assert rates[0] == pytest.approx(0.005) and 0.005 < rates[1] < 0.05
    # The diagnostics read the three blocks by the plain net's names.
    for block in ("layer_01", "layer_02", "layer_03"):
        assert f"layers/grad/signal_std/{block}" in run.data.metrics
    artifacts = artifact_paths(client, run.info.run_id)
    assert "plots/learning_rate.png" in artifacts
    out = Path(run.data.tags["output_dir"])
    # The run's model: a stock functional Keras graph with the skip connections.
    reloaded = keras.models.load_model(out / "model" / "data" / "model.keras")
    assert type(reloaded).__name__ == "Functional"
    assert reloaded.get_layer("hidden_02_add") is not None
