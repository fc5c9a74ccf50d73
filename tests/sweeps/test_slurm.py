"""A sweep through a real Slurm (Hydra's submitit launcher): the single-node Slurm that
.ci/slurm.sh starts (GRADLAB_TEST_SLURM=1, SLURM_CONF), runs on a tracking server. Skipped,
with the reason, where no such Slurm is up."""

from __future__ import annotations

import pytest
from helpers.slurm import LAUNCHER, queued, slurm_absent
from helpers.sweeps import TINY, TrackingServer, children, run_cli, sweep_parent
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow
JOBS = 6


@pytest.fixture(scope="module")
def slurm_sweep(tmp_path_factory):
    """6 short jobs as one Slurm job array, one CPU each, on a tracking server."""
    reason = slurm_absent()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    server = TrackingServer.start(folder / "server")
    try:
        code, output, seconds = run_cli(
            folder,
            "-m",
            *LAUNCHER,
            *TINY,
            "diagnostics.plots=false",
            f"training.seed=range({JOBS})",
            "tracking=server",
            f"tracking.uri={server.uri}",
            timeout=900,
        )
        print(f"{JOBS} jobs through Slurm in {seconds:.1f} s")
        yield MlflowClient(server.uri), code, output
    finally:
        server.stop()


@pytest.mark.xdist_group("slurm")
def test_a_slurm_sweep_records_every_job_under_one_parent(slurm_sweep):
    client, code, output = slurm_sweep
    assert code == 0, output[-3000:]
    parent = sweep_parent(client)
    runs = children(client, parent)
    assert sorted(int(r.data.params["training.seed"]) for r in runs) == list(range(JOBS))
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["children_finished"] == JOBS
    assert parent.data.tags["launcher"] == "SlurmLauncher"
    # Each ran as a task of one Slurm job array, with the one CPU its task was given.
    arrays = {r.data.tags["slurm_job"].split("_")[0] for r in runs}
    assert len(arrays) == 1 and len({r.data.tags["slurm_job"] for r in runs}) == JOBS
    assert {r.data.tags["tf_intra_op_threads"] for r in runs} == {"1"}
    # Each job said how far the sweep was on the parent (jobs end side by side: any k).
    assert f" of {JOBS} ended: " in parent.data.tags["sweep_progress"]
    assert "report/report.html" in {
        a.path for a in client.list_artifacts(parent.info.run_id, "report")
    }
    # This Slurm keeps no accounting: states came from squeue, not a failing sacct.
    assert "Bypassing sacct error" not in output


@pytest.mark.xdist_group("slurm")
def test_no_job_is_left_in_the_queue(slurm_sweep):
    assert queued() == ""
