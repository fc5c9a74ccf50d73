"""Model A from an earlier run or from the Model Registry, instead of training it again.

`transfer.source` (or `transfer.source_run_id`) names either a run (a `pretrain_A` run,
or a study run, which names its model A run in the tag `model_A_run_id`) or a registered
model, `models:/<name>@<alias>` or `models:/<name>/<version>`. The model is fetched
through MLflow with the client's tracking URI (any store: SQLite, a server), then read
with Keras' safe loading, which refuses to run code stored in the file (Lambda layers
and the like). Every way this can fail ends in one line that names the source and what
is wrong.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
import mlflow.artifacts
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from experiments.core import names
from experiments.tracking.logged_model import logged_model_of, model_of_run
from experiments.transfer.tasks import TransferError

# Where runs recorded before models were Logged Models kept model A.
LEGACY_ARTIFACT = "model/model.keras"
# Inside a Logged Model saved by MLflow's Keras flavor.
KERAS_FILE = Path("data") / "model.keras"
_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def load_model_a(
    client: MlflowClient, source: str, expected: keras.Model, dst_dir: Path, key: str
) -> tuple[keras.Model, str]:
    """Model A named by `source` (config key `key`), checked against `expected`, the
    model A this config would build. Returns the model and the id of the run that
    trained it."""
    if source.startswith("models:/"):
        path, holder, what = _registered(client, source, dst_dir, key)
    else:
        path, holder, what = _from_run(client, source, dst_dir, key)
    model = _read_safely(path, key, what)
    check_fits(model, expected, key)
    return model, holder


def _registered(client: MlflowClient, uri: str, dst_dir: Path, key: str) -> tuple[Path, str, str]:
    match = _REGISTERED.match(uri)
    if match is None:
        raise TransferError(
            f"{key}: {uri} is not a registered model URI (models:/<name>@<alias> or "
            "models:/<name>/<version>)"
        )
    name, alias, version = match.group("name"), match.group("alias"), match.group("version")
    try:
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
    except MlflowException:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise TransferError(
            f"{key}: the Model Registry of {client.tracking_uri} has no model {name!r} with "
            f"{what} (transfer.register_as=<name> registers model A)"
        ) from None
    # A version made from a Logged Model has it as its source (models:/<model id>); the
    # registry's model_id field is not filled in by every store.
    model_id = found.model_id or found.source.removeprefix("models:/")
    if not found.source.startswith("models:/"):
        raise TransferError(f"{key}: {uri} is not a logged model (its source is {found.source})")
    path = _download_model(client, model_id, dst_dir, key)
    return path, found.run_id, f"logged model {model_id}"


def _from_run(client: MlflowClient, run_id: str, dst_dir: Path, key: str) -> tuple[Path, str, str]:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise TransferError(f"{key}: no such run in {client.tracking_uri}") from None
    if run.info.lifecycle_stage == "deleted":
        raise TransferError(f"{key}: the run is deleted in {client.tracking_uri}")
    holder = run.data.tags.get(names.MODEL_A_TAG, run_id)
    # The run itself holds model A unless it is a study's run, which names its pretrain_A.
    model_id = logged_model_of(run) if holder == run_id else model_of_run(client, holder)
    if model_id is not None:
        return _download_model(client, model_id, dst_dir, key), holder, f"logged model {model_id}"
    try:
        with _no_progress_bar():
            path = mlflow.artifacts.download_artifacts(
                run_id=holder,
                artifact_path=LEGACY_ARTIFACT,
                dst_path=str(dst_dir),
                tracking_uri=client.tracking_uri,
            )
    except (MlflowException, OSError):
        via = "" if holder == run_id else f" (via its model A run {holder})"
        raise TransferError(
            f"{key}: the run{via} has no logged model (tracking.log_model=false, or its "
            "training failed)"
        ) from None
    return Path(path), holder, LEGACY_ARTIFACT


def _download_model(client: MlflowClient, model_id: str, dst_dir: Path, key: str) -> Path:
    try:
        location = client.get_logged_model(model_id).artifact_location
        with _no_progress_bar():
            folder = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(dst_dir), tracking_uri=client.tracking_uri
            )
    except (MlflowException, OSError) as e:
        raise TransferError(f"{key}: logged model {model_id} cannot be fetched ({e})") from None
    return Path(folder) / KERAS_FILE


def _read_safely(path: Path, key: str, what: str) -> keras.Model:
    if not path.is_file() or not zipfile.is_zipfile(path):
        raise TransferError(
            f"{key}: {what} is not a Keras archive (a .keras file is a zip archive written "
            "by model.save); the source holds something else under that name"
        )
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - Keras raises many types for one cause: unreadable
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise TransferError(
            f"{key}: {what} cannot be loaded safely as a Keras model ({reason})"
        ) from None


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


def _hidden_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers between the input and the output layer (a graph lists its input too)."""
    return [layer for layer in model.layers[:-1] if not isinstance(layer, keras.layers.InputLayer)]


def check_fits(model: keras.Model, expected: keras.Model, key: str) -> None:
    """Same input shape, same hidden stack, as many outputs as task A has classes. The
    data it was trained on may differ (MNIST digits for a Fashion-MNIST task B): only
    shapes are checked."""
    if isinstance(model, keras.Sequential) != isinstance(expected, keras.Sequential):
        want = "a chain of layers" if isinstance(expected, keras.Sequential) else "a graph"
        raise TransferError(
            f"{key}: model A is a {type(model).__name__}, the config builds {want} "
            "(model.residual must match)"
        )
    got_shape, want_shape = tuple(model.input_shape[1:]), tuple(expected.input_shape[1:])
    if got_shape != want_shape:
        raise TransferError(
            f"{key}: model A takes inputs of shape {got_shape}, the data's images are {want_shape}"
        )
    got = [layer_signature(layer) for layer in _hidden_layers(model)]
    want = [layer_signature(layer) for layer in _hidden_layers(expected)]
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
