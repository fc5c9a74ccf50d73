"""Helpers for the sweep tests: real sweeps in subprocesses, a real MLflow tracking
server on a free loopback port, and checks that a sweep's records are complete."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import experiments.config.schema  # noqa: F401  (stores the config schema that compose needs)
from experiments.processes import child_environment

# Small synthetic jobs: a few seconds each, several epochs of metrics to check.
TINY = [
    "data=synthetic",
    "data.train_size=256",
    "data.validation_size=64",
    "data.test_size=64",
    "training.epochs=3",
    "training.verbose=0",
    "optimizer.learning_rate=0.05",
]
# A learning rate that makes the loss non-finite in the first epoch (value clipping at
# 1e30 clips nothing).
EXPLODING = ["clipping=value", "clipping.threshold=1e30", "optimizer.learning_rate=1e12"]
# The load the issue names: 16 short jobs, 4 at a time (without the diagnostics'
# figures, which the load checks do not read: a second apiece).
LOAD_SWEEP = [
    "-m",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=4",
    *TINY,
    "diagnostics.plots=false",
    "training.seed=range(16)",
]


# The admin of a test server with MLflow's basic-auth app, as clients send it.
CREDENTIALS = {
    "MLFLOW_TRACKING_USERNAME": "lab-admin",
    "MLFLOW_TRACKING_PASSWORD": "not-a-default-9",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(folder: Path, *args: str, timeout: float = 600, **env: str):
    """`python -m experiments.train ARGS` launched from `folder`; (returncode, output,
    seconds), stdout and stderr together in `output`."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "experiments.train", *args],
        cwd=folder,
        env=child_environment(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout, time.perf_counter() - started


@dataclass
class TrackingServer:
    """A real `mlflow server` process group, as `make server` starts it."""

    uri: str
    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(
        cls,
        folder: Path,
        port: int | None = None,
        timeout: float = 120,
        store: str | None = None,
        auth: dict[str, str] | None = None,
    ) -> TrackingServer:
        """A server on `store` (default: a SQLite file in `folder`); `auth`, the admin's
        MLFLOW_TRACKING_USERNAME/PASSWORD, runs MLflow's basic-auth app."""
        from experiments.tracking.server import server_command, server_env

        port = port or free_port()
        folder.mkdir(parents=True, exist_ok=True)
        command = server_command(
            "127.0.0.1",
            port,
            store or f"sqlite:///{folder / 'server.db'}",
            folder / "artifacts",
            auth=auth is not None,
        )
        log_path = folder / "server.log"
        env = server_env() if auth is None else server_env(folder, {**os.environ, **auth})
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stopped as one
            )
        server = cls(f"http://127.0.0.1:{port}", process, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(server.uri + "/health", timeout=2):
                    return server
            except OSError:
                time.sleep(0.5)
        server.stop()
        raise RuntimeError(f"mlflow server did not answer in {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def sweep_parent(client, experiment: str = "gradient-lab"):
    """The single sweep parent run of the experiment."""
    found = client.get_experiment_by_name(experiment)
    parents = client.search_runs([found.experiment_id], filter_string="tags.sweep = 'true'")
    assert len(parents) == 1, [p.info.run_name for p in parents]
    return parents[0]


def children(client, parent):
    return client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        max_results=1000,
    )


def history_rows(output_dir: Path) -> list[dict[str, str]]:
    with open(output_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def assert_run_complete(client, run, epochs: int) -> None:
    """Everything the job kept in its output folder arrived in the store: every epoch of
    every metric (as history.csv has them), every param of its resolved config, and
    every artifact."""
    from omegaconf import OmegaConf

    from experiments.core.flatten import flatten

    output_dir = Path(run.data.tags["output_dir"])
    rows = history_rows(output_dir)
    assert len(rows) == epochs
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        logged = client.get_metric_history(run.info.run_id, name)
        assert sorted(m.step for m in logged) == list(range(epochs)), name
        by_step = {m.step: m.value for m in logged}
        for step, row in enumerate(rows):
            assert abs(by_step[step] - float(row[name])) <= 1e-6 * max(1.0, abs(by_step[step]))
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "epoch_seconds")]
    assert sorted(steps) == list(range(epochs))
    assert "test_accuracy" in run.data.metrics

    resolved = OmegaConf.load(output_dir / "resolved_config.yaml")
    for key, value in flatten(resolved).items():
        if value is not None:
            assert key in run.data.params, key

    def listed(path=None):
        for item in client.list_artifacts(run.info.run_id, path):
            yield from listed(item.path) if item.is_dir else [item.path]

    artifacts = set(listed())
    assert {
        "config/resolved_config.yaml",
        "config/overrides.yaml",
        "model_summary.txt",
        "plots/learning_curves.png",
    } <= artifacts, artifacts
    (model,) = run.outputs.model_outputs
    assert client.get_logged_model(model.model_id).source_run_id == run.info.run_id


def assert_load_sweep_complete(client, output: str) -> None:
    """LOAD_SWEEP landed whole: 16 FINISHED children of one parent, nothing missing,
    and no store error on the way."""
    assert "database is locked" not in output
    parent = sweep_parent(client)
    runs = children(client, parent)
    assert len(runs) == 16
    assert sorted(int(r.data.params["training.seed"]) for r in runs) == list(range(16))
    assert parent.data.metrics["children_finished"] == 16
    for run in runs:
        assert run.info.status == "FINISHED"
        assert_run_complete(client, run, epochs=3)


# --- Optuna searches (the project's sweeper, src/hydra_plugins) -------------------------
# A search without the hparams_search preset's deep net: `hydra.sweeper.params` and the
# sampler come from the test.
OPTUNA = [
    "-m",
    "hydra/sweeper=gradlab_optuna",
    "hydra.sweeper.direction=maximize",
    "hydra.sweeper.study_name=${tracking.experiment}",
]


def load_search(storage: str) -> list[str]:
    """LOAD_SWEEP as an Optuna search with its study in `storage`: a grid over the 16
    seeds, 4 trials at a time through joblib."""
    return [
        *OPTUNA,
        "hydra/sweeper/sampler=grid",
        f"hydra.sweeper.storage='{storage}'",
        "hydra.sweeper.n_jobs=4",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        search_params(**{"training.seed": "range(0,16)"}),
        *TINY,
        "diagnostics.plots=false",
    ]


def search_params(**params: str) -> str:
    """`++hydra.sweeper.params={key:"sweep",...}` as one override (++: the params map is
    closed to new keys)."""
    body = ",".join(f'{key}:"{value}"' for key, value in params.items())
    return f"++hydra.sweeper.params={{{body}}}"


def optuna_study(storage: str, name: str = "gradient-lab"):
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


def trial_runs(client, experiment: str = "gradient-lab") -> dict[int, list]:
    """MLflow runs of an experiment by the Optuna trial number they carry."""
    found = client.get_experiment_by_name(experiment)
    by_trial: dict[int, list] = {}
    for run in client.search_runs([found.experiment_id], max_results=1000):
        if "optuna_trial" in run.data.tags:
            by_trial.setdefault(int(run.data.tags["optuna_trial"]), []).append(run)
    return by_trial


# --- PostgreSQL (GRADLAB_TEST_POSTGRES_URL, set by .ci/run) ------------------------------
POSTGRES_ENV = "GRADLAB_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


class PostgresDatabase:
    """A fresh database in the test server, dropped at the end: MLflow and Optuna both
    keep an `alembic_version` table, so each store gets its own database."""

    def __init__(self, name: str):
        from sqlalchemy.engine import make_url

        self.admin = make_url(postgres_url())
        self.name = name
        self.url = self.admin.set(database=name).render_as_string(hide_password=False)

    def _execute(self, statement: str) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(sa.text(statement))
        finally:
            engine.dispose()

    def __enter__(self) -> PostgresDatabase:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._execute(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
