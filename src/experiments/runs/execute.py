"""One job, from its valid config to its run's end: the store and the experiment, the
claims that keep a configuration from running twice at once, the skip of a config that
FINISHED before, then the run itself (runs.lifecycle), a training run or the transfer
study. TensorFlow starts only after the data and the net's size are known to be good.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from omegaconf import DictConfig

from experiments import claims, data
from experiments.config.presets import describe
from experiments.config.schema import Config
from experiments.core import digest, names
from experiments.errors import UserError
from experiments.paths import CHECKOUT_DIR
from experiments.runs import continuation, lifecycle
from experiments.runs.job import Job
from experiments.sweeps.objective import MONITOR, objective, objectives
from experiments.tracking import resume, store
from experiments.tracking.orphans import process_tags
from experiments.training.memory import (
    OutOfMemory,
    available_bytes,
    check_weights_fit,
    out_of_memory_in_one_line,
)
from experiments.transfer.options import TransferName
from experiments.transfer.tasks import TransferError

log = logging.getLogger(__name__)
# Errors whose message says it all: the run's end reason is the message alone.
PLAIN_ERRORS = (data.DataError, TransferError, OutOfMemory)


@dataclass
class Result:
    """A run's final validation accuracy (None if it exploded), how it ended (an MLflow
    status, or SKIPPED for a config that FINISHED before), and, when some of its records
    did not reach the store, one line saying where they are."""

    val_accuracy: float | None
    incomplete: str | None = None
    status: str = "FINISHED"
    # Each metric the run logged, at its last step.
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def objective(self) -> float:
        """What an optimizing sweeper sees (sweeps.objective)."""
        return objective(self.val_accuracy)

    def objectives(self, wanted: Sequence[str]) -> dict[str, float | None]:
        """What a search of several objectives sees (sweeps.objective)."""
        return objectives(self.val_accuracy, self.metrics, wanted)


def run(cfg: Config, resolved: DictConfig, job: Job) -> Result:
    """One training run, recorded in MLflow. Its result holds the final validation
    accuracy, or None when training stopped on a non-finite value (the run then ends
    FAILED). In a multirun, a config that already FINISHED is skipped and its earlier
    value returned. Runs of one configuration never overlap in a multirun, and no two
    runs share an output folder (experiments.claims)."""
    try:
        client, experiment_id = store.open_experiment(
            cfg.tracking.uri, cfg.tracking.experiment, job.launch_dir
        )
    except store.TrackingError as e:
        raise UserError(str(e)) from None
    config_hash = digest.config_hash(resolved)
    checkpointing = continuation.wanted(cfg.training, job.launcher)
    with ExitStack() as claimed:
        if (job.multirun and cfg.tracking.skip_finished) or checkpointing:
            # Another process running this configuration (the same sweep started twice,
            # a job requeued while its first start still ends): wait for it, then skip
            # what it finished, or continue what it checkpointed.
            claimed.callback(
                claims.config_claim(client.tracking_uri, experiment_id, config_hash).release
            )
        if job.multirun and cfg.tracking.skip_finished:
            earlier = resume.finished_run(client, experiment_id, config_hash)
            if earlier is not None:
                skipped = resume.skip(client, earlier, config_hash, job.parent_run_id)
                return Result(skipped.get(MONITOR), status="SKIPPED", metrics=skipped)
        continued = None
        if checkpointing:
            try:
                continued = continuation.find(client, experiment_id, config_hash)
            except Exception as e:  # noqa: BLE001 - the store refuses the search: one line
                raise UserError(store.describe_failure(client.tracking_uri, e)) from None
        # A continued run goes on in its own folder, beside its checkpoint and history.
        where = continued.path.parent if continued else job.output_dir
        try:
            job.output_dir, folder = claims.own_output_folder(
                where, continued.run_id if continued else None
            )
        except OSError as e:
            raise UserError(f"output folder {job.output_dir} cannot be written: {e}") from None
        claimed.callback(folder.release)
        plan = None
        if checkpointing and cfg.transfer.name is TransferName.study:
            log.warning("training.checkpoint: the transfer study does not checkpoint")
        elif checkpointing:
            path = continued.path if continued else job.output_dir / continuation.FILE
            plan = continuation.Plan(path, config_hash, continued)
        return _record(cfg, resolved, job, client, experiment_id, config_hash, folder, plan)


def _record(
    cfg: Config,
    resolved: DictConfig,
    job: Job,
    client,
    experiment_id: str,
    config_hash: str,
    folder: claims.Claim,
    plan: continuation.Plan | None = None,
) -> Result:
    """The run itself, once its configuration and output folder are this job's."""
    tags = job.tags() | {
        names.SEED_TAG: str(cfg.training.seed),
        names.GIT_COMMIT_TAG: store.git_commit(CHECKOUT_DIR),
        names.HASH_TAG: config_hash,
        names.GROUP_TAG: digest.group_hash(resolved),
    }
    continued = plan.continued if plan else None
    try:
        if continued:
            # In a sweep, the run is its job's now: the sweep that finishes it counts it
            # and reports it (a sweep run again after a crash, or a requeued job).
            parent = {names.PARENT_TAG: job.parent_run_id} if job.parent_run_id else {}
            session = lifecycle.reopen_run(
                client,
                continued.run_id,
                tags | process_tags() | continuation.tags(continued) | parent,
                job.output_dir,
            )
        else:
            session = lifecycle.open_run(
                client,
                experiment_id,
                job.run_name,
                tags | process_tags(),
                job.output_dir,
                job.parent_run_id,
                description=describe(job.choices, job.overrides),
            )
    except Exception as e:  # noqa: BLE001 - the store refuses the run: one line, whatever the cause
        raise UserError(store.describe_failure(client.tracking_uri, e)) from None
    folder.note(run_id=session.run_id)
    log.info(
        "MLflow run %s in %s (experiment %r)",
        session.run_id,
        client.tracking_uri,
        cfg.tracking.experiment,
    )
    try:
        with session.closing(plain=PLAIN_ERRORS):
            if cfg.tracking.system_metrics:
                session.monitor_system(cfg.tracking.system_metrics_interval)
            if not continued:  # a continued run has its config and data already
                lifecycle.log_config(session, resolved, job.overrides)
            splits = data.load(cfg.data)
            if not continued:
                lifecycle.log_data(session, splits, cfg.data)
            check_weights_fit(
                cfg.model.hidden_sizes(), splits.input_shape, splits.num_classes, available_bytes()
            )
            # After the data and the net's size: a file that cannot be read, or a net that
            # cannot fit, fails before TensorFlow's start-up.
            session.set_tags(job.start_tensorflow())
            # Keras and the models load here, not with this module: a job skipped above
            # (its config FINISHED before) never pays for TensorFlow's start-up.
            from experiments.runs.training_run import train
            from experiments.transfer.study import run_study

            with out_of_memory_in_one_line():
                if cfg.transfer.name is TransferName.study:
                    value = run_study(cfg, splits, session)
                else:
                    value = train(cfg, splits, session, job.trial_reporter(), plan)
    except PLAIN_ERRORS as e:
        raise UserError(str(e)) from None
    return Result(
        value, session.incomplete_reason(), session.status or "FINISHED", session.final_metrics
    )
