"""Where runs go: the tracking store's URI, its artifact location, the experiment; and
opening a store so that it is usable, or saying in one line why it is not.

Everything goes through an explicit `MlflowClient` (no fluent global state), so one
process can hold a sweep's parent run and a job's run at once, and tests can point
several stores at temporary folders in-process.

A new SQLite store is created by MLflow's schema migrations, which fail when two
processes run them at once ("duplicate column name", "_alembic_tmp_* already exists")
and can leave the file half-migrated, unusable for good. Every process of the lab opens
a SQLite store under one exclusive file lock per store, so one creates it and the
others find it complete; a half-migrated store found later is repaired (after a
backup copy) or reported with what to do.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import urlparse

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.file_utils import ExclusiveFileLock

from experiments.core import names
from experiments.tracking import server
from experiments.tracking.orphans import close_orphans
from experiments.tracking.replay import one_line
from experiments.tracking.spill import no_space

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
SQLITE_PREFIX = "sqlite:///"
# Tracking stores MLflow 3 opens (a plain file store needs MLFLOW_ALLOW_FILE_STORE).
SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "file", "")
LEFTOVER_PREFIX = "_alembic_tmp_"


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used; the message is one line."""


def tracking_uri(configured: str | None, launch_dir: Path) -> str:
    """The config key wins, then $MLFLOW_TRACKING_URI, then a SQLite file in the launch
    folder. Relative SQLite paths are made absolute here, once, so that nothing that
    changes the working directory later can move the store."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE_PREFIX}{DB_NAME}"
    if uri.startswith(SQLITE_PREFIX) and not uri[len(SQLITE_PREFIX) :].startswith("/"):
        uri = SQLITE_PREFIX + str((launch_dir / uri[len(SQLITE_PREFIX) :]).resolve())
    return uri


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len(SQLITE_PREFIX) :]) if uri.startswith(SQLITE_PREFIX) else None


def artifact_location(uri: str, launch_dir: Path) -> str | None:
    """Artifacts of a local SQLite store live in <launch folder>/mlruns, where `mlflow ui`
    run from that folder finds them; a server decides for itself (None)."""
    if uri.startswith("sqlite:"):
        return (launch_dir / ARTIFACTS_DIR).resolve().as_uri()
    return None


def open_store(uri: str, *, create: bool = True) -> MlflowClient:
    """A client of a store that answers, with its schema complete. Raises TrackingError
    (one line naming the store and what to do) otherwise; `create=False` refuses to
    create a SQLite file that does not exist (a reader must not leave one behind)."""
    # MLflow logs every database error with its whole traceback before raising it; the
    # lab says each in one line itself (describe_failure).
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    scheme = urlparse(uri).scheme
    if scheme not in SCHEMES:
        raise TrackingError(
            f"tracking store {uri}: unsupported URI scheme {scheme or '(none)'!r}; use "
            "sqlite:///<file>, http(s)://<server> or postgresql://..., or leave tracking.uri "
            "null for ./mlflow.db"
        )
    try:
        server.check_reachable(uri)
    except server.ServerUnreachable as e:
        raise TrackingError(str(e)) from None
    path = sqlite_path(uri)
    if path is None:
        return _touched(uri)
    if not create and not path.is_file():
        raise TrackingError(
            f"tracking store {path} does not exist: no runs recorded there (run from the "
            "folder that holds mlflow.db, or name the store)"
        )
    with _store_lock(path):
        try:
            return _touched(uri)
        except TrackingError as first:
            if not _half_migrated(path, str(first)):
                raise
            _repair(path, str(first))
            _forget_engine(uri)
            return _touched(uri)


def _touched(uri: str) -> MlflowClient:
    """A client whose store has opened (MLflow creates or checks the schema on its
    first use)."""
    try:
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - every store fails in its own words; one line each
        raise TrackingError(describe_failure(uri, e)) from None
    return client


def describe_failure(uri: str, error: Exception) -> str:
    """One line: which store, what went wrong, what to do."""
    text = one_line(error).split(": ", 1)[1]
    where = sqlite_path(uri) or uri
    if "file is not a database" in text or "database disk image is malformed" in text:
        return (
            f"tracking store {where} is not a readable MLflow SQLite database ({_short(text)}): "
            "move it aside to start a new store, or point tracking.uri elsewhere"
        )
    if no_space(error):
        return (
            f"tracking store {where} cannot be written (no space left on device, ENOSPC): "
            "free space on its disk, or point tracking.uri at another store"
        )
    unwritable = ("readonly database", "read-only", "disk I/O error")
    if any(words in text for words in unwritable):
        reason = next(words for words in unwritable if words in text)
        return (
            f"tracking store {where} cannot be written ({reason}): make the file and its "
            "folder writable, or point tracking.uri at another store"
        )
    if "out-of-date database schema" in text or LEFTOVER_PREFIX in text:
        return (
            f"tracking store {where} has an incomplete schema ({_short(text)}): take a copy, "
            f"then run `mlflow db upgrade {uri}`"
        )
    return f"tracking store {where} cannot be used: {type(error).__name__}: {_short(text)}"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class _store_lock:
    """An exclusive lock held while a process opens (maybe creates) one SQLite store.
    In the temporary folder, keyed by the store's path, like MLflow's own
    `_safe_initialize_tables` lock: the store's folder may not be writable."""

    def __init__(self, path: Path):
        key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        self._lock = ExclusiveFileLock(
            str(Path(tempfile.gettempdir()) / f"gradlab-store-{key}.lock")
        )

    def __enter__(self) -> None:
        self._lock.__enter__()

    def __exit__(self, *exc) -> None:
        self._lock.__exit__(*exc)


def _forget_engine(uri: str) -> None:
    """MLflow keeps one SQLAlchemy engine per store URI for the life of the process
    (SqlAlchemyStore._engine_map); after the file was replaced, its pooled connections
    still hold the old one."""
    # SQLAlchemy's store (SQLAlchemy, Alembic) only for a store that was repaired.
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)
    if engine is not None:
        engine.dispose()


def _sqlite(path: Path):
    return closing(sqlite3.connect(path))


def _tables(path: Path) -> list[str]:
    with _sqlite(path) as con:
        return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]


def _half_migrated(path: Path, message: str) -> bool:
    try:
        tables = _tables(path)
    except sqlite3.DatabaseError:
        return False  # not a database at all: nothing to repair
    return any(t.startswith(LEFTOVER_PREFIX) for t in tables) or "out-of-date" in message


def _runs_recorded(path: Path) -> int:
    try:
        with _sqlite(path) as con:
            return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0


def _repair(path: Path, reason: str) -> None:
    """A half-migrated store: a copy is kept beside it; one that never held a run is
    made anew, one that holds runs loses the migration's leftover tables and is
    upgraded by MLflow's own `mlflow db upgrade`. Raises TrackingError when that fails."""
    backup = path.with_name(f"{path.name}.half-migrated-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copy2(path, backup)
    if _runs_recorded(path) == 0:
        path.unlink()
        print(
            f"tracking store {path} was half-migrated and held no runs: made anew (the old "
            f"file is {backup})",
            file=sys.stderr,
        )
        return
    with _sqlite(path) as con:
        for table in _tables(path):
            if table.startswith(LEFTOVER_PREFIX):
                con.execute(f'DROP TABLE "{table}"')
        con.commit()
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "db", "upgrade", f"{SQLITE_PREFIX}{path}"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        shutil.copy2(backup, path)
        raise TrackingError(
            f"tracking store {path} is half-migrated ({_short(reason)}) and `mlflow db upgrade` "
            f"could not finish it; a copy is in {backup}: restore a backup of your own, or "
            "move the file aside to start a new store"
        )
    print(
        f"tracking store {path} was half-migrated: upgraded (a copy is in {backup})",
        file=sys.stderr,
    )


# What the MLflow UI needs to open an experiment of the lab on its runs (the
# Model-training view, not the GenAI one) and to say what the experiment is.
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    names.DESCRIPTION_TAG: (
        "Runs of the gradient lab: Keras nets on Fashion-MNIST, each with a remedy for "
        "vanishing or exploding gradients, their curves and per-layer gradient diagnostics."
    ),
}


def ensure_experiment(client: MlflowClient, name: str, location: str | None) -> str:
    """The experiment's id, creating it if needed, with the lab's experiment tags. Two
    processes may race to create it; the loser reads the winner's."""
    try:
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            for key, value in EXPERIMENT_TAGS.items():
                if key not in found.tags:  # an experiment made before these tags, or elsewhere
                    client.set_experiment_tag(found.experiment_id, key, value)
            return found.experiment_id
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    except MlflowException as e:
        try:
            found = client.get_experiment_by_name(name)
        except MlflowException:
            found = None
        if found is not None:
            return found.experiment_id
        raise TrackingError(describe_failure(client.tracking_uri, e)) from None


def open_experiment(
    configured_uri: str | None, name: str, launch_dir: Path
) -> tuple[MlflowClient, str]:
    """The store a run or a sweep records into, and its experiment's id. Runs left
    RUNNING by processes of this host that are gone are closed on the way."""
    uri = tracking_uri(configured_uri, launch_dir)
    client = open_store(uri)
    experiment_id = ensure_experiment(client, name, artifact_location(uri, launch_dir))
    close_orphans(client, [experiment_id])
    return client, experiment_id


def git_commit(folder: Path | None) -> str:
    """The checkout's commit; "unknown" outside a checkout (an installed wheel)."""
    if folder is None:
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"
