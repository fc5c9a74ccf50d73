"""What a run looks like to MLflow's own tools: datasets as inputs, a Logged Model that
loads with MLflow's loaders, who and what ran it, a description, experiment tags, and
optional system metrics. In-process runs on the synthetic set."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.compose import FAST

from experiments.core import names
from experiments.tracking.server import server_env
from experiments.tracking.store import EXPERIMENT_TAGS
from experiments.tracking.ui import runs_address, ui_command


def inputs_by_context(run) -> dict[str, object]:
    return {
        next(t.value for t in i.tags if t.key == names.DATASET_CONTEXT_TAG): i.dataset
        for i in run.inputs.dataset_inputs
    }


@pytest.mark.slow
def test_a_run_records_its_three_splits_as_datasets(workspace):
    assert workspace.train(*FAST, "training.epochs=1") == 0
    assert workspace.train(*FAST, "training.epochs=1", "data.noise=0.5") == 0
    first, noisier = workspace.runs()
    datasets = inputs_by_context(first)
    assert set(datasets) == {"training", "validation", "test"}
    train = datasets["training"]
    assert train.name == "synthetic-train" and train.source_type == "code"
    assert json.loads(train.source)["tags"]["generator"] == "experiments.data.synthetic"
    assert json.loads(train.profile)["features_shape"] == [512, 28, 28]
    assert "tensor" in train.schema
    # Two copies of the data that differ are told apart; the same data is recognised.
    assert inputs_by_context(noisier)["training"].digest != train.digest
    assert inputs_by_context(noisier)["test"].digest != datasets["test"].digest
    assert len({d.digest for d in datasets.values()}) == 3


def test_the_real_data_is_recorded_with_its_folder_as_source(workspace, fashion_mnist_dir):
    assert workspace.train(
        f"data.dir={fashion_mnist_dir}", "training.epochs=1", "training.steps_per_epoch=5",
        "training.verbose=0", "diagnostics.enabled=false", "tracking.log_model=false",
    ) == 0  # fmt: skip
    (run,) = workspace.runs()
    train = inputs_by_context(run)["training"]
    assert train.name == "fashion_mnist-train"
    assert str(fashion_mnist_dir.resolve()) in train.source
    assert json.loads(train.profile)["features_shape"] == [55000, 28, 28]


def test_the_model_is_a_logged_model_that_mlflow_loads(workspace):
    import mlflow
    import mlflow.keras
    import mlflow.pyfunc

    assert workspace.train(*FAST) == 0
    (run,) = workspace.runs()
    client = workspace.client()
    (output,) = run.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert logged.source_run_id == run.info.run_id and logged.name == "model"
    linked = {m.key: m.value for m in logged.metrics}
    assert linked["test_accuracy"] == run.data.metrics["test_accuracy"]
    assert linked["val_accuracy"] == run.data.metrics["val_accuracy"]
    mlflow.set_tracking_uri(workspace.uri)
    try:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{output.model_id}")
        keras_model = mlflow.keras.load_model(f"models:/{output.model_id}")
    finally:
        mlflow.set_tracking_uri(None)
    signature = pyfunc.metadata.get_input_schema().inputs[0]
    assert signature.shape == (-1, 28, 28)
    example = pyfunc.metadata.load_input_example(logged.artifact_location)
    probabilities = np.asarray(pyfunc.predict(np.asarray(example, dtype=np.float32)))
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        keras_model.predict(np.asarray(example), verbose=0), probabilities, rtol=1e-5
    )


def test_log_model_false_logs_no_model(workspace):
    assert workspace.train(*FAST, "training.epochs=1", "tracking.log_model=false") == 0
    (run,) = workspace.runs()
    assert not run.outputs.model_outputs


def test_who_ran_it_from_where_and_what_it_is(workspace):
    assert workspace.train(*FAST, "training.epochs=1", "experiment=elu") == 0
    (run,) = workspace.runs()
    tags = run.data.tags
    assert tags["mlflow.user"] and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"] and tags["mlflow.source.git.commit"] == tags["git_commit"]
    description = tags["mlflow.note.content"]
    assert description.startswith("The notebook's ELU net")  # the preset's purpose
    assert "Overrides: " in description and "training.epochs=1" in description
    experiment = workspace.client().get_experiment(run.info.experiment_id)
    for key, value in EXPERIMENT_TAGS.items():
        assert experiment.tags[key] == value


@pytest.mark.slow
def test_system_metrics_come_from_mlflows_own_sampler(workspace):
    code = workspace.train(
        *FAST, "training.epochs=3", "data.train_size=4000", "tracking.system_metrics=true",
        "tracking.system_metrics_interval=0.5",
    )  # fmt: skip
    assert code == 0
    (run,) = workspace.runs()
    system = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system


def test_the_ui_opens_on_the_runs_table_of_the_model_training_view():
    assert (
        runs_address("127.0.0.1", 5000, "7")
        == "http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning"
    )
    command = ui_command("127.0.0.1", 5000, "sqlite:////tmp/x/mlflow.db")
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--workers") + 1] == "2"
    assert server_env()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
