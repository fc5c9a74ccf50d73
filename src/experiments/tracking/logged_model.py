"""The trained model as an MLflow 3 Logged Model of its run: saved in MLflow's Keras
format (loadable with mlflow.keras.load_model and mlflow.pyfunc.load_model), with a
signature and a small input example, linked to the run (its outputs) and to the run's
final metrics.

Everything goes through the run's explicit client (no active run, no global tracking
URI). The model is saved into the run's output folder first, so a store that fails
keeps it there, and `upload` can send it later. MLflow's own mlflow.keras.log_model is
not used: with an input example it fails before writing it (mlflow#16183, MLflow 3.17),
and it reads the global tracking URI.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from experiments.core import names

ARTIFACT_NAME = "model"
EXAMPLE_ROWS = 3
MODEL_TYPE = "keras-dense-classifier"


def save(model, example: np.ndarray, folder: Path, run_id: str) -> Path:
    """The model in MLflow's Keras format in `folder`: a stock Keras model (Sequential
    or functional, as the trained one) of the same layers and weights, with no class of
    the lab's own, so it loads wherever Keras does; the signature inferred from
    `example`'s first rows and the model's predictions."""
    import keras
    import mlflow.keras
    import tensorflow as tf
    from mlflow.models import Model, infer_signature

    if isinstance(model, keras.Sequential):
        plain = keras.Sequential(
            [keras.Input(shape=model.input_shape[1:]), *model.layers], name=model.name
        )
    else:
        plain = keras.Model(model.inputs, model.outputs, name=model.name)
    example = np.asarray(example[:EXAMPLE_ROWS])
    # A direct call, not predict(): predict traces a function of its own for three rows.
    signature = infer_signature(example, np.asarray(plain(example, training=False)))
    shutil.rmtree(folder, ignore_errors=True)
    try:
        # MLflow's Keras flavor writes the input example before it makes the folder.
        folder.mkdir(parents=True)
        mlflow.keras.save_model(
            plain,
            str(folder),
            mlflow_model=Model(artifact_path=ARTIFACT_NAME, run_id=run_id),
            signature=signature,
            input_example=example,
            # Given, so MLflow need not load the model in a child process to infer them.
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
        )
    except BaseException:
        # A model cut short (a full disk) must not lie there looking like one.
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def upload(client, run_id: str, folder: Path, step: int, linked_keys: list[str]) -> str:
    """A Logged Model of the run from a folder written by `save`, with the run's metrics
    `linked_keys` at `step` linked to it; returns its id. A run that already holds a
    model logged at this step gets nothing new (a replay sends the same record again).

    An upload that fails (a full disk under the artifact store) leaves no model that
    looks usable: its files are deleted and it is marked FAILED, with the reason. So is
    a model of the run left PENDING by an upload that never ended (a killed process)."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric

    run = client.get_run(run_id)
    for output in (run.outputs.model_outputs if run.outputs else None) or []:
        if output.step == step:
            return output.model_id
    for stale in client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    ):
        if stale.status == LoggedModelStatus.PENDING:
            discard(client, stale.model_id, "its upload never finished")
    logged = client.create_logged_model(
        run.info.experiment_id, name=ARTIFACT_NAME, source_run_id=run_id, model_type=MODEL_TYPE
    )
    try:
        client.log_model_artifacts(logged.model_id, str(folder))
        _log_descriptor(client, logged.model_id, folder)
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    except Exception as e:
        discard(client, logged.model_id, f"its upload failed: {type(e).__name__}: {e}"[:1000])
        raise
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
    # As MLflow's own Model.log does: the run's values at that step again, with the
    # model's id; same key, time, step and value, so the run's history keeps them once.
    linked = [
        Metric(m.key, m.value, m.timestamp, m.step, model_id=logged.model_id)
        for key in linked_keys
        for m in client.get_metric_history(run_id, key)
        if m.step == step
    ]
    if linked:
        client.log_batch(run_id, metrics=linked)
    return logged.model_id


def _log_descriptor(client, model_id: str, folder: Path) -> None:
    """The model's MLmodel with its id, written in a folder of its own: the kept copy
    in the output folder is never rewritten (on a full disk that could cut it short)."""
    from mlflow.models import Model

    descriptor = Model.load(str(folder))
    descriptor.model_id = model_id
    with tempfile.TemporaryDirectory(prefix="gradlab-mlmodel-") as staging:
        descriptor.save(str(Path(staging) / "MLmodel"))
        client.log_model_artifacts(model_id, staging)


def discard(client, model_id: str, reason: str) -> None:
    """A Logged Model that is no model: its files deleted (a partial copy of a model
    can be what fills a disk), then marked FAILED with `failure_reason`. Each step is
    tried on its own: the store may be failing too, and a later upload retries."""
    from mlflow.entities import LoggedModelStatus
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    steps = (
        lambda: get_artifact_repository(
            client.get_logged_model(model_id).artifact_location, tracking_uri=client.tracking_uri
        ).delete_artifacts(),
        lambda: client.set_logged_model_tags(model_id, {names.FAILURE_REASON_TAG: reason}),
        lambda: client.finalize_logged_model(model_id, LoggedModelStatus.FAILED),
    )
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - the upload's own error is the one to report
            continue


def model_of_run(client, run_id: str) -> str | None:
    """The id of the run's logged model (the last one logged), if it has one."""
    return logged_model_of(client.get_run(run_id))


def logged_model_of(run) -> str | None:
    """The id of the last logged model among a fetched run's outputs, if it has one."""
    outputs = run.outputs
    models = (outputs.model_outputs if outputs else None) or []
    return max(models, key=lambda m: m.step).model_id if models else None
