"""Real sweeps through real launchers, each in its own process: joblib (load on a fresh
SQLite store, thread shares, a job that fails alone: one sweep read by three tests) and
Ray (a cluster of two nodes on this machine, one tracking server)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from helpers.sweeps import (
    LOAD_SWEEP,
    TINY,
    TrackingServer,
    assert_run_complete,
    children,
    free_port,
    run_cli,
    sweep_parent,
)
from mlflow.tracking import MlflowClient

from experiments.processes import child_environment
from experiments.sweeps.parallelism import available_cores

pytestmark = pytest.mark.slow


def client_for(folder: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


@pytest.fixture(scope="module")
def joblib_load(tmp_path_factory):
    """One parallel sweep on a fresh store, which the next three tests read: 5 jobs, 4 at
    a time (processes that open the new store at once), 4 short ones and one (seed -1)
    that the config checks refuse in its own process, before it opens a run. The full
    load of 16 jobs goes to a tracking server (tests/tracking/test_server.py)."""
    folder = tmp_path_factory.mktemp("joblib_load")
    code, output, _ = run_cli(folder, *LOAD_SWEEP[:-1], "training.seed=range(-1,4)")
    return folder, code, output


@pytest.mark.xdist_group("joblib_load")
def test_load_on_a_fresh_sqlite_store_loses_nothing(joblib_load):
    folder, _, output = joblib_load
    client = client_for(folder)
    parent = sweep_parent(client)
    finished = [r for r in children(client, parent) if r.info.status == "FINISHED"]
    assert "database is locked" not in output
    assert sorted(int(r.data.params["training.seed"]) for r in finished) == list(range(4))
    for run in finished:
        assert_run_complete(client, run, epochs=3)


@pytest.mark.xdist_group("joblib_load")
def test_a_job_that_raises_fails_alone(joblib_load):
    folder, code, output = joblib_load
    # The sweep ends on the refused job's one-line error and exit code ...
    assert code == 2, output[-3000:]
    assert "training.seed" in output and "Traceback" not in output
    client = client_for(folder)
    parent = sweep_parent(client)
    runs = children(client, parent)
    # ... after every other job ran to its end; the refused one left no run behind.
    assert sorted(r.data.params["training.seed"] for r in runs) == sorted(map(str, range(4)))
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["children_finished"] == 4
    assert parent.data.metrics["children_running"] == 0
    assert "4 finished, 0 failed" in output
    # A sweep that ended on a raising job still gets its report (built at exit).
    assert "report/report.html" in {
        a.path for a in client.list_artifacts(parent.info.run_id, "report")
    }


@pytest.mark.xdist_group("joblib_load")
def test_parallel_jobs_share_the_cores(joblib_load):
    folder, _, _ = joblib_load
    client = client_for(folder)
    runs = children(client, sweep_parent(client))
    share = str(max(1, available_cores() // 4))  # LOAD_SWEEP: n_jobs=4
    assert {r.data.tags["tf_intra_op_threads"] for r in runs} == {share}
    assert {r.data.tags["tf_inter_op_threads"] for r in runs} == {share}


RAY_HOST = "127.0.0.2"


@contextmanager
def ray_cluster(*node_cpus: int) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray cluster of real nodes on this machine, as on several machines: `ray start
    --head`, then `ray start --address` for each further node, each with its own CPUs.
    Yields the head's address and the environment a client needs (the cluster's own
    token: Ray 2.5x authenticates its clients); every node is stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths are short
    port = free_port()
    # A loopback address Ray takes as it is: it swaps 127.0.0.1 for the machine's own
    # network address, and this cluster talks over loopback only.
    host = RAY_HOST
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    common = [f"--node-ip-address={host}", "--disable-usage-stats", "--block"]
    commands = [
        ["--head", f"--port={port}", f"--temp-dir={folder}", "--include-dashboard=false"],
        *([f"--address={host}:{port}"] for _ in node_cpus[1:]),
    ]
    nodes = []
    try:
        for cpus, command in zip(node_cpus, commands, strict=True):
            nodes.append(
                subprocess.Popen(
                    [str(Path(sys.executable).parent / "ray"), "start", *command, *common,
                     f"--num-cpus={cpus}"],
                    env=child_environment(**env),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )  # fmt: skip
            if len(nodes) == 1:  # the head first: the other nodes join a running head
                wait_for_nodes(f"{host}:{port}", 1, env)
        wait_for_nodes(f"{host}:{port}", len(nodes), env)
        yield f"{host}:{port}", env
    finally:
        # Ray's daemons (GCS, raylets, agents) run in sessions of their own, which a
        # node's process group does not reach, and `ray start` waits half a minute for
        # them on SIGTERM; each names this cluster's folder on its command line.
        kill_processes_naming(str(folder))
        for node in nodes:
            with suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def kill_processes_naming(text: str) -> None:
    import psutil

    named = []
    for process in psutil.process_iter(["cmdline"]):
        if any(text in part for part in process.info["cmdline"] or ()):
            named.append(process)
    for process in named:
        with suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(named, timeout=30)


def wait_for_nodes(address: str, count: int, env: dict[str, str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ray"), "status", f"--address={address}"],
            capture_output=True, text=True, env=child_environment(**env),
        )  # fmt: skip
        status = done.stdout
        if done.returncode == 0 and status.count("node_") >= count:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster did not reach {count} nodes:\n{status}")


def test_ray_jobs_land_on_both_nodes_of_a_cluster_and_in_one_server(tmp_path):
    server = TrackingServer.start(tmp_path / "server")
    with ray_cluster(1, 1) as (address, ray_env):
        try:
            code, output, _ = run_cli(
                tmp_path,
                "-m",
                "hydra/launcher=ray",
                f"hydra.launcher.ray.init.address={address}",
                f"+hydra.launcher.ray.init._node_ip_address={RAY_HOST}",
                # The launcher sets a size for a Ray it starts itself, which Ray refuses
                # when it joins a running cluster: null keeps the cluster's own.
                "+hydra.launcher.ray.init.object_store_memory=null",
                "tracking=server",
                f"tracking.uri={server.uri}",
                *TINY,
                "training.seed=1,2",
                **ray_env,
            )
            assert code == 0, output[-3000:]
            client = MlflowClient(server.uri)
            parent = sweep_parent(client)
            runs = children(client, parent)
            assert sorted(r.data.params["training.seed"] for r in runs) == ["1", "2"]
            assert {r.info.status for r in runs} == {"FINISHED"}
            # One job on each node: each has one CPU, each job reserves one.
            assert len({r.data.tags["ray_node"] for r in runs}) == 2
            assert parent.data.metrics["children_finished"] == 2
            assert parent.data.tags["launcher"] == "RayLauncher"
            assert {r.data.tags["tf_intra_op_threads"] for r in runs} == {"1"}
            for run in runs:
                assert_run_complete(client, run, epochs=3)
        finally:
            server.stop()
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store
