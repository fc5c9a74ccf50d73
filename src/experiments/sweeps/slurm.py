"""Job states for submitit on a Slurm without accounting.

submitit waits for a job's result file and, to tell a job Slurm ended without one
(killed at its time limit, out of memory, cancelled), asks `sacct`. `sacct` needs the
accounting daemon (slurmdbd), which a small cluster, and the test cluster of
.ci/slurm.sh, may not run: it exits 1 ("Slurm accounting storage is disabled"), submitit
logs a warning on every poll and keeps the job UNKNOWN, so the sweep would wait forever
for a job that is gone. Where accounting is off, the launching process asks `squeue`
instead, which slurmctld answers from memory: finished jobs too, for MinJobAge seconds
(300 by default), and a job it no longer lists has ended long ago. Swapped in by the
sweep's callback, said in the log; with accounting on, submitit is left as it is.
"""

from __future__ import annotations

import getpass
import logging
import subprocess

log = logging.getLogger(__name__)
# What submitit's read_info reads: sacct --parsable2's header, then its rows.
HEADER = "JobID|State|NodeList"
SQUEUE = ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N"]
# A job slurmctld no longer lists: ended, in a state nobody can ask for any more.
GONE = "NOT_IN_QUEUE"


def accounting_enabled() -> bool:
    """Whether Slurm keeps accounting (so `sacct` answers); True when it cannot be told."""
    try:
        shown = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return True
    for line in shown.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "AccountingStorageType":
            return value.strip() != "accounting_storage/none"
    return True


def squeue_watcher():
    """submitit's SlurmInfoWatcher with `squeue` in place of `sacct`."""
    # submitit (the slurm extra): loaded by a Slurm sweep's launching process only.
    from submitit.slurm.slurm import SlurmInfoWatcher

    class SqueueInfoWatcher(SlurmInfoWatcher):
        def _make_command(self):
            if super()._make_command() is None:  # nothing left to ask about
                return None
            # Every job of this user, not `--jobs`: squeue exits 1 on ids it has forgotten.
            return [*SQUEUE, f"--user={getpass.getuser()}"]

        def read_info(self, string):
            text = string if isinstance(string, str) else string.decode()
            info = super().read_info(f"{HEADER}\n{text}")
            listed = {job_id.split("_")[0] for job_id in info}
            for job_id in self._registered - self._finished:
                # An array submitit registered whose tasks squeue lists none of.
                if job_id not in info and job_id.split("_")[0] not in listed:
                    info[job_id] = {"JobID": job_id, "State": GONE, "NodeList": ""}
            return info

    return SqueueInfoWatcher(delay_s=600)


def use_squeue_without_accounting() -> None:
    """In the launching process, before the jobs are submitted."""
    if accounting_enabled():
        return
    # submitit (the slurm extra): loaded by a Slurm sweep's launching process only.
    from submitit.slurm import slurm

    if type(slurm.SlurmJob.watcher).__name__ != "SqueueInfoWatcher":
        slurm.SlurmJob.watcher = squeue_watcher()
        log.info("Slurm keeps no accounting: submitit reads job states from squeue")
