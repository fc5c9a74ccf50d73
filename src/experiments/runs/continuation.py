"""Continuing a run from its checkpoint (`training.checkpoint`).

A run that checkpoints names its file in its `checkpoint` tag (the file lives in the
run's output folder, `checkpoint.npz`). A job whose configuration has a run that did not
FINISH and still names a checkpoint (a job preempted and requeued by Slurm, a process
killed and launched again with the same config) continues that run: the same MLflow
run, RUNNING again, from its last finished epoch. The run is found by its config digest
(the `config_hash` tag) in the job's own store and experiment, and the file must say the
same digest and run: a checkpoint is never read for another configuration. A file that
is missing, damaged or from another configuration is dropped with one line saying why,
and the job starts a new run.

When the run ends FINISHED, or FAILED because training blew up (a state no one continues
from), or pruned, its checkpoint goes and the tag with it; a run stopped by Ctrl-C,
SIGTERM or an error keeps both, for the next launch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from experiments.core import names
from experiments.sweeps.parallelism import is_submitit
from experiments.training.settings import TrainingConfig

log = logging.getLogger(__name__)

FILE = "checkpoint.npz"


def wanted(training: TrainingConfig, launcher_target: str) -> bool:
    """Whether this job checkpoints: `training.checkpoint`, or, left null, whether its
    launcher is one of Hydra's submitit launchers (Slurm, or its local stand-in)."""
    if training.checkpoint is not None:
        return training.checkpoint
    # Jobs a scheduler may stop and start again.
    return is_submitit(launcher_target)


@dataclass
class Continuation:
    """An earlier run of this configuration and its checkpoint, read and checked."""

    run_id: str
    path: Path
    checkpoint: object  # training.checkpoint.Checkpoint (Keras-free until it is read)
    continuations: int

    @property
    def epoch(self) -> int:
        return self.checkpoint.epoch


@dataclass
class Plan:
    """A job that checkpoints: where its file goes (the continued run's own file, or
    `checkpoint.npz` in its output folder), its digest, and the run it continues."""

    path: Path
    config_hash: str
    continued: Continuation | None = None


def find(client, experiment_id: str, config_hash: str) -> Continuation | None:
    """The latest unfinished run of this configuration that names a checkpoint, with the
    checkpoint; None when there is none or it cannot be used (said in one line, and the
    run no longer names it)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.{names.HASH_TAG} = '{config_hash}' and attributes.status != 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=50,
    )
    earlier = next((r for r in runs if r.data.tags.get(names.CHECKPOINT_TAG)), None)
    if earlier is None:
        return None
    run_id = earlier.info.run_id
    path = Path(earlier.data.tags[names.CHECKPOINT_TAG])
    # Keras comes with the checkpoint's reader: only for a run that has one.
    from experiments.training.checkpoint import Checkpoint, CheckpointError

    try:
        checkpoint = Checkpoint.read(path)
        if checkpoint.config_hash != config_hash or checkpoint.run_id != run_id:
            raise CheckpointError(
                f"{path} belongs to run {checkpoint.run_id} of configuration "
                f"{checkpoint.config_hash}, not run {run_id} of {config_hash}"
            )
    except CheckpointError as e:
        log.warning("starting over: run %s cannot be continued: %s", run_id, e)
        client.delete_tag(run_id, names.CHECKPOINT_TAG)
        return None
    count = int(earlier.data.tags.get(names.CONTINUATIONS_TAG, "0")) + 1
    log.info(
        "continuing run %s (%s) from its checkpoint after epoch %d: %s",
        run_id,
        earlier.info.status,
        checkpoint.epoch,
        path,
    )
    return Continuation(run_id, path, checkpoint, count)


def tags(continuation: Continuation) -> dict[str, str]:
    return {
        names.CONTINUATIONS_TAG: str(continuation.continuations),
        names.CONTINUED_FROM_TAG: str(continuation.epoch),
    }


def drop(session, path: Path) -> None:
    """The run is over for good: its checkpoint goes, and its tag."""
    path.unlink(missing_ok=True)
    try:
        session.client.delete_tag(session.run_id, names.CHECKPOINT_TAG)
    except Exception as e:  # noqa: BLE001 - a store that fails now: the file is gone anyway
        log.warning("could not remove the checkpoint tag of run %s: %s", session.run_id, e)
