"""submitit's job states from squeue where Slurm keeps no accounting, and the tags that
say which Slurm job ran a run: no Slurm needed."""

from __future__ import annotations

import subprocess

import pytest

from experiments.sweeps import slurm
from experiments.sweeps.parallelism import placement_tags

pytest.importorskip("submitit")

# squeue --noheader --states=all --format=%i|%T|%N: an array of 4, two ended, one
# running, one pending (squeue shows pending tasks as a range), and another user's job.
SQUEUE = "7_0|COMPLETED|vm\n7_1|CANCELLED|vm\n7_2|RUNNING|vm\n7_[3]|PENDING|\n9|RUNNING|vm\n"


def watcher_of(*job_ids: str):
    watcher = slurm.squeue_watcher()
    for job_id in job_ids:
        watcher.register_job(job_id)
    return watcher


def test_squeue_answers_what_sacct_would():
    watcher = watcher_of("7_0", "7_1", "7_2", "7_3")
    command = watcher._make_command()
    assert command[:4] == slurm.SQUEUE and command[-1].startswith("--user=")
    states = {k: v["State"] for k, v in watcher.read_info(SQUEUE.encode()).items()}
    assert states == {
        "7_0": "COMPLETED",
        "7_1": "CANCELLED",
        "7_2": "RUNNING",
        "7_3": "PENDING",
        "9": "RUNNING",
    }


def test_a_job_squeue_has_forgotten_has_ended():
    """Past MinJobAge slurmctld lists a job no more: it ended, and is waited on no more
    (its missing result file then says it failed)."""
    watcher = watcher_of("7_0", "5_0", "5_1")
    watcher._info_dict.update(watcher.read_info(SQUEUE))
    assert watcher.get_state("5_1", mode="cache") == slurm.GONE
    assert watcher.is_done("5_0", mode="cache") and watcher.is_done("7_0", mode="cache")


def test_nothing_left_to_ask_asks_nothing():
    assert watcher_of()._make_command() is None


@pytest.mark.parametrize(
    ("shown", "enabled"),
    [
        ("AccountingStorageType   = accounting_storage/none\n", False),
        ("AccountingStorageType   = accounting_storage/slurmdbd\n", True),
        ("", True),  # cannot tell: submitit's sacct is left as it is
    ],
)
def test_accounting_is_read_from_slurms_config(monkeypatch, shown, enabled):
    done = subprocess.CompletedProcess([], 0, stdout=shown)
    monkeypatch.setattr(slurm.subprocess, "run", lambda *a, **k: done)
    assert slurm.accounting_enabled() is enabled


def test_a_slurm_task_names_its_array_job_and_node(monkeypatch):
    for name, value in {
        "SLURM_JOB_ID": "12",
        "SLURM_ARRAY_JOB_ID": "7",
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURMD_NODENAME": "gpu01",
    }.items():
        monkeypatch.setenv(name, value)
    assert placement_tags() == {"slurm_job": "7_3", "slurm_node": "gpu01"}
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
    assert placement_tags()["slurm_job"] == "12"
