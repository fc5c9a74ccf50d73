"""A run's splits as MLflow dataset inputs, built with MLflow's public API only: the store
holds what MLflow's own `mlflow.log_input` records for the same data and context."""

from __future__ import annotations

import ast
import inspect
import json
from types import SimpleNamespace

import mlflow
import mlflow.data
import numpy as np
import pytest
from mlflow.entities import Dataset
from mlflow.tracking import MlflowClient

from experiments.core import names
from experiments.data import Splits
from experiments.tracking import datasets
from experiments.tracking.datasets import CONTEXTS, dataset_records, digest, source_of
from experiments.tracking.recorder import RunRecorder


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_module_touches_no_private_member_of_mlflow():
    """A private member (`_to_mlflow_entity`, `mlflow.data._x`) may change or vanish in
    any MLflow release; the public API builds the same entities."""
    tree = ast.parse(inspect.getsource(datasets))
    found = [
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and _private(node.attr)
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlflow"):
            names = [*node.module.split("."), *(alias.name for alias in node.names)]
            found += [f"line {node.lineno}: {name}" for name in names if _private(name)]
        if isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: {alias.name}"
                for alias in node.names
                if alias.name.startswith("mlflow") and any(map(_private, alias.name.split(".")))
            ]
    assert found == []


def test_a_record_is_mlflows_dataset_entity_and_its_context():
    """What the recorder logs and the records file keeps for a later replay: the entity's
    own dictionary (as MLflow's `to_dictionary` gives it) and the split's context, in
    JSON that reads back the same."""
    settings = SimpleNamespace(train_size=12, test_size=6, image_size=28, num_classes=10)
    records = dataset_records(small_splits(), "synthetic", source_of(settings, None))
    assert [r["context"] for r in records] == list(CONTEXTS.values())
    for record in records:
        fields = {k: v for k, v in record.items() if k != "context"}
        assert Dataset(**fields).to_dictionary() == fields
        assert json.loads(json.dumps(record)) == record
    assert records[0]["name"] == "synthetic-train"


def small_splits(folder: str | None = None) -> Splits:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 4), ("test", 6)):
        arrays[f"x_{split}"] = rng.random((n, 28, 28), dtype=np.float32)
        arrays[f"y_{split}"] = rng.integers(0, 10, n).astype(np.int64)
    return Splits(**arrays, folder=folder)


def stored_inputs(client: MlflowClient, run_id: str) -> dict[str, dict[str, object]]:
    """The run's dataset inputs in the store, by context: every field of each dataset."""
    return {
        {t.key: t.value for t in i.tags}[names.DATASET_CONTEXT_TAG]: i.dataset.to_dictionary()
        for i in client.get_run(run_id).inputs.dataset_inputs
    }


@pytest.mark.parametrize("from_folder", [False, True], ids=["generated", "idx-folder"])
def test_the_stored_inputs_are_those_mlflows_own_log_input_records(
    workspace, tmp_path, from_folder
):
    folder = str(tmp_path) if from_folder else None
    settings = SimpleNamespace(train_size=12, test_size=6, image_size=28, num_classes=10)
    source = source_of(settings, folder)
    splits = small_splits(folder)
    client = MlflowClient(workspace.uri)
    # Artifacts in the test's folder: the store's default is ./mlruns of the caller.
    artifacts = (tmp_path / "artifacts").as_uri()
    experiment_id = client.create_experiment("datasets", artifact_location=artifacts)

    ours = client.create_run(experiment_id).info.run_id
    # The way a run logs them (RunSession.log_splits): the records, through the recorder.
    RunRecorder(client, ours).log_datasets(dataset_records(splits, "synthetic", source))

    mlflow.set_tracking_uri(workspace.uri)
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            for split, context in CONTEXTS.items():
                x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
                dataset = mlflow.data.from_numpy(
                    x, targets=y, source=source, name=f"synthetic-{split}", digest=digest(x, y)
                )
                mlflow.log_input(dataset, context=context)
    finally:
        mlflow.set_tracking_uri(None)

    found = stored_inputs(client, ours)
    assert found == stored_inputs(client, run.info.run_id)
    assert set(found) == {"training", "validation", "test"}
    train = found["training"]
    assert train["name"] == "synthetic-train"
    assert train["digest"] == digest(splits.x_train, splits.y_train)
    assert train["source_type"] == ("local" if from_folder else "code")
    assert (folder or "experiments.data.synthetic") in train["source"]
    assert "tensor" in train["schema"] and '"features_shape": [12, 28, 28]' in train["profile"]
