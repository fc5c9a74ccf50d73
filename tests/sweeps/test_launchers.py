"""Real sweeps through real launchers, each in its own process: joblib (parallel jobs,
thread shares, faults, load on a fresh SQLite store), Ray (a local instance on
127.0.0.1 that the launcher starts and stops), and Optuna."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.sweeps import (
    LOAD_SWEEP,
    TINY,
    assert_load_sweep_complete,
    assert_run_complete,
    children,
    run_cli,
    sweep_parent,
)
from mlflow.tracking import MlflowClient

from experiments.sweeps.parallelism import available_cores

pytestmark = pytest.mark.slow


def client_for(folder: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def test_parallel_jobs_share_the_cores_and_fail_alone(tmp_path):
    missing = tmp_path / "no-such-data"
    code, output, _ = run_cli(
        tmp_path,
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "training.epochs=3",
        "training.verbose=0",
        "clipping=value",
        "clipping.threshold=1e30",
        # synthetic x 0.05 finishes; synthetic x 1e12 explodes; fashion_mnist raises.
        "data=synthetic,fashion_mnist",
        f"data.dir={missing}",
        "optimizer.learning_rate=0.05,1e12",
    )
    assert code != 0, output  # the sweep reports that a job raised ...
    client = client_for(tmp_path)
    parent = sweep_parent(client)
    runs = children(client, parent)
    by_case = {
        (r.data.params["data.name"], r.data.params["optimizer.learning_rate"]): r for r in runs
    }
    # ... after every other job ran to its end.
    assert len(runs) == 4
    assert by_case[("synthetic", "0.05")].info.status == "FINISHED"
    exploded = by_case[("synthetic", "1000000000000.0")]
    assert exploded.info.status == "FAILED" and "non-finite" in exploded.data.tags["failure_reason"]
    for lr in ("0.05", "1000000000000.0"):
        raised = by_case[("fashion_mnist", lr)]
        assert raised.info.status == "FAILED" and str(missing) in raised.data.tags["failure_reason"]
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["children_finished"] == 1
    assert parent.data.metrics["children_failed"] == 3
    assert "1 finished, 3 failed" in output
    # A sweep that ended on a raising job still gets its report (built at exit).
    assert "report/report.html" in {
        a.path for a in client.list_artifacts(parent.info.run_id, "report")
    }

    # The jobs that reached training (the others stopped at the data, before TensorFlow).
    trained = [r for r in runs if r.data.params["data.name"] == "synthetic"]
    share = str(max(1, available_cores() // 2))
    assert {r.data.tags["tf_intra_op_threads"] for r in trained} == {share}
    assert {r.data.tags["tf_inter_op_threads"] for r in trained} == {share}


def test_load_on_a_fresh_sqlite_store_loses_nothing(tmp_path):
    code, output, _ = run_cli(tmp_path, *LOAD_SWEEP)
    assert code == 0, output[-3000:]
    assert_load_sweep_complete(client_for(tmp_path), output)


def test_ray_launcher_lands_two_children_under_one_parent(tmp_path):
    code, output, _ = run_cli(
        tmp_path,
        "-m",
        "hydra/launcher=ray",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init._node_ip_address=127.0.0.1",
        "+hydra.launcher.ray.init.include_dashboard=false",
        *TINY,
        "training.seed=1,2",
    )
    assert code == 0, output[-3000:]
    assert "Started a local Ray instance" in output
    client = client_for(tmp_path)
    parent = sweep_parent(client)
    runs = children(client, parent)
    assert sorted(r.data.params["training.seed"] for r in runs) == ["1", "2"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert parent.data.metrics["children_finished"] == 2
    assert parent.data.tags["launcher"] == "RayLauncher"
    assert {r.data.tags["tf_intra_op_threads"] for r in runs} == {"1"}
    for run in runs:
        assert_run_complete(client, run, epochs=3)


def test_optuna_counts_an_exploding_trial_as_the_worst(tmp_path):
    import yaml

    code, output, _ = run_cli(
        tmp_path,
        "hparams_search=optuna",
        "hydra/sweeper/sampler=grid",
        # Two trials: one learns, one explodes (value clipping at 1e30 clips nothing).
        'hydra.sweeper.params={optimizer.learning_rate:"choice(0.05,1e12)",'
        'clipping.threshold:"choice(1e30)",init:"choice(he_normal)"}',
        "clipping=value",
        "model=mlp",
        *(o for o in TINY if not o.startswith("optimizer.learning_rate=")),
    )
    assert code == 0, output[-3000:]
    # The sweeper's own words for a trial it marks failed (None, NaN, or an exception).
    assert "Failed experiment" not in output
    client = client_for(tmp_path)
    parent = sweep_parent(client)
    runs = children(client, parent)
    status = {r.data.params["optimizer.learning_rate"]: r.info.status for r in runs}
    assert status == {"0.05": "FINISHED", "1000000000000.0": "FAILED"}

    sweep_dir = Path(parent.data.tags["sweep_dir"])
    if not sweep_dir.is_absolute():
        sweep_dir = tmp_path / sweep_dir
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert result["best_params"]["optimizer.learning_rate"] == 0.05
    finished = next(r for r in runs if r.info.status == "FINISHED")
    assert result["best_value"] == pytest.approx(finished.data.metrics["val_accuracy"])
    assert parent.data.metrics["best_value"] == pytest.approx(result["best_value"])
    assert parent.data.tags["best.optimizer.learning_rate"] == "0.05"
