"""Model A from an earlier run (transfer.source_run_id) instead of training it again.

The run may live in any store the client reaches (SQLite, a server): the artifact is
fetched through MLflow with the client's tracking URI, then read with Keras' safe
loading, which refuses to deserialize arbitrary code (Lambda layers and the like).
Every way this can fail ends in one line that names the run and what is wrong.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from experiments.transfer.tasks import MODEL_A_TAG, TransferError

MODEL_ARTIFACT = "model/model.keras"


def load_model_a(
    client: MlflowClient, run_id: str, expected: keras.Model, dst_dir: Path
) -> tuple[keras.Model, str]:
    """Model A of run `run_id` (or, for a study run, of the run it names as holding
    model A), checked against `expected`, the model A this config would build.
    Returns the model and the id of the run whose artifact it is."""
    key = f"transfer.source_run_id={run_id}"
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise TransferError(f"{key}: no such run in {client.tracking_uri}") from None
    if run.info.lifecycle_stage == "deleted":
        raise TransferError(f"{key}: the run is deleted in {client.tracking_uri}")
    holder = run.data.tags.get(MODEL_A_TAG, run_id)

    try:
        import mlflow.artifacts

        with _no_progress_bar():
            path = mlflow.artifacts.download_artifacts(
                run_id=holder,
                artifact_path=MODEL_ARTIFACT,
                dst_path=str(dst_dir),
                tracking_uri=client.tracking_uri,
            )
    except (MlflowException, OSError):
        via = "" if holder == run_id else f" (via its model A run {holder})"
        raise TransferError(
            f"{key}: the run{via} has no {MODEL_ARTIFACT} artifact "
            "(tracking.log_model=false, or its training failed)"
        ) from None

    if not zipfile.is_zipfile(path):
        raise TransferError(
            f"{key}: {MODEL_ARTIFACT} is not a Keras archive (a .keras file is a zip archive "
            "written by model.save); the run holds something else under that name"
        )
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - Keras raises many types for one cause: unreadable
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise TransferError(
            f"{key}: {MODEL_ARTIFACT} cannot be loaded safely as a Keras model ({reason})"
        ) from None
    check_fits(model, expected, key)
    return model, holder


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a progress bar on stderr for every download; for one small file it
    is noise around the one-line error. Its documented switch is this variable."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    previous = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def layer_signature(layer: keras.layers.Layer) -> str:
    """What must match for a reused layer to stand in for the configured one: its
    name, kind, activation and weight shapes (initializers do not matter once trained)."""
    shapes = "x".join("(" + ",".join(str(d) for d in w.shape) + ")" for w in layer.weights)
    kind = type(layer).__name__
    activation = layer.get_config().get("activation")
    if isinstance(activation, str) and activation != "linear":
        kind += f"[{activation}]"
    return f"{layer.name} {kind}{' ' + shapes if shapes else ''}"


def check_fits(model: keras.Model, expected: keras.Model, key: str) -> None:
    """Same input shape, same hidden stack, as many outputs as task A has classes."""
    if not isinstance(model, keras.Sequential):
        raise TransferError(f"{key}: model A is a {type(model).__name__}, not a Sequential model")
    got_shape, want_shape = tuple(model.input_shape[1:]), tuple(expected.input_shape[1:])
    if got_shape != want_shape:
        raise TransferError(
            f"{key}: model A takes inputs of shape {got_shape}, the data's images are {want_shape}"
        )
    got = [layer_signature(layer) for layer in model.layers[:-1]]
    want = [layer_signature(layer) for layer in expected.layers[:-1]]
    if got != want:
        first = next(
            (i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w),
            min(len(got), len(want)),
        )
        found = got[first] if first < len(got) else "nothing"
        needed = want[first] if first < len(want) else "nothing"
        raise TransferError(
            f"{key}: model A's hidden stack does not fit the configured one: layer {first + 1} "
            f"is {found}, the config builds {needed} (model, activation, normalization must match)"
        )
    got_out, want_out = model.layers[-1], expected.layers[-1]
    if layer_signature(got_out) != layer_signature(want_out):
        raise TransferError(
            f"{key}: model A's output layer is {layer_signature(got_out)}, task A needs "
            f"{layer_signature(want_out)} (one softmax unit per task-A class)"
        )
