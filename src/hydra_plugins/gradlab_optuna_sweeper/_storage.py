"""The study's database: Optuna's RDBStorage on any SQLAlchemy URL (a SQLite file,
PostgreSQL), shared by the sweeper, its jobs and other workers."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import optuna
from optuna.trial import TrialState
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from experiments.errors import UserError

log = logging.getLogger(__name__)

# Seconds a SQLite writer waits for another one's lock before it gives up: several
# processes (workers, their jobs, heartbeats) write one file at once.
SQLITE_LOCK_WAIT_S = 60
# Two processes that create a fresh database at once can race on its tables; the loser
# finds them made by the winner on a second try.
CREATE_TRIES = 5


@contextmanager
def quiet(*also: type[Warning]) -> Iterator[None]:
    """Optuna's warnings about what the sweeper does on purpose, silenced (and any of the
    categories `also` names): heartbeats and their retries are experimental, and each
    `ask` warns that heartbeats belong to `study.optimize`, which an ask-and-tell loop
    does not use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
        for category in also:
            warnings.simplefilter("ignore", category)
        yield


def shown(url: str) -> str:
    """The URL without its password, for logs and result files."""
    try:
        parsed = make_url(url)
    except (SQLAlchemyError, ValueError):
        return url
    # Rendered again only to hide a password: rendering escapes a SQLite `file:` URI.
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


class StorageError(UserError):
    """The study's database refused the sweeper (read-only, unreachable): one line that
    names it and what to do."""


def reason(error: BaseException) -> str:
    """The database's own words for an error (Optuna's StorageInternalError says only that
    a commit failed; SQLAlchemy's adds the statement and a link): its first line."""
    found = None
    cause: BaseException | None = error
    while cause is not None and found is None:
        if isinstance(cause, DBAPIError) and cause.orig is not None:
            found = str(cause.orig)
        cause = cause.__cause__ or cause.__context__
    lines = (found or str(error)).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def describe_failure(url: str, error: BaseException) -> str:
    """One line for a database error: the storage, the database's reason, what to do."""
    try:
        database = make_url(url).database if url.startswith("sqlite") else None
    except (SQLAlchemyError, ValueError):
        database = None
    if database and database.startswith("file:"):  # a SQLite URI (?uri=true)
        database = database.removeprefix("file:")
    said = reason(error)
    if database and any(w in said for w in ("readonly", "read-only", "unable to open")):
        todo = f"make {database} and its folder writable"
    elif database:
        todo = f"check {database} and its folder"
    else:
        todo = "check that the database is reachable and that this user may write to it"
    return (
        f"Optuna storage {shown(url)} failed ({said}): "
        f"{todo}, or set hydra.sweeper.storage to another database"
    )


@contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Database errors inside become a StorageError in one line."""
    try:
        yield
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        raise StorageError(describe_failure(url, e)) from e


class StudyStorage(optuna.storages.RDBStorage):
    """RDBStorage whose stale-trial check also sees a RUNNING trial that never got a
    heartbeat row: its worker died between asking for it and its first beat, or could
    not beat at all. Optuna's check (`optuna.storages.fail_stale_trials`) passes over
    such a trial, and a search waiting for it would wait forever."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # trial_id -> when this process first saw it RUNNING without a heartbeat row.
        self._unbeaten_since: dict[int, float] = {}

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        grace = self.grace_period or 2 * self.heartbeat_interval
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        beating = self._trials_with_heartbeat(study_id)
        now, clock = datetime.now(), time.monotonic()
        unbeaten = {}
        for trial in running:
            trial_id = trial._trial_id
            if trial_id in stale:
                log.warning(
                    "trial %d: no heartbeat for over %d s, its worker is gone: failing it",
                    trial.number,
                    grace,
                )
                continue
            if trial_id in beating:
                continue
            unbeaten[trial_id] = self._unbeaten_since.get(trial_id, clock)
            # Judged by its start time (stored in UTC and read in this machine's time, as
            # Optuna does); one whose start looks to be in the future (another machine's
            # clock ahead of this one) waits one grace period from when this process
            # first saw it, so no trial is waited on for longer than that. A trial a live
            # worker has just asked is younger than the grace period: its worker beats
            # for it at once (see _impl.Heartbeat).
            started = (now - trial.datetime_start).total_seconds() if trial.datetime_start else 0
            age = max(started, clock - unbeaten[trial_id])
            if age > grace:
                log.warning(
                    "trial %d: RUNNING for %.0f s and never had a heartbeat (grace %d s), "
                    "its worker is gone: failing it",
                    trial.number,
                    age,
                    grace,
                )
                stale.append(trial_id)
        self._unbeaten_since = unbeaten
        return stale

    def _trials_with_heartbeat(self, study_id: int) -> set[int]:
        # Optuna's public API does not say whether a trial has a heartbeat row, and its
        # own check skips a trial without one: read the ids from its heartbeat table.
        from optuna.storages._rdb import models

        query = (
            select(models.TrialHeartbeatModel.trial_id)
            .join(
                models.TrialModel, models.TrialModel.trial_id == models.TrialHeartbeatModel.trial_id
            )
            .where(models.TrialModel.study_id == study_id)
        )
        with self.engine.connect() as connection:
            return set(connection.scalars(query))


def open_storage(
    url: str, heartbeat_interval: int | None = None, max_retry: int | None = None
) -> StudyStorage:
    """RDBStorage on `url`. With a heartbeat interval, RUNNING trials whose worker stopped
    beating for two intervals (or that never had a beat and started over two intervals
    ago) are failed and retried (up to `max_retry` times) by
    `optuna.storages.fail_stale_trials`."""
    engine_kwargs = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_LOCK_WAIT_S}
    for attempt in range(CREATE_TRIES):
        try:
            with quiet():
                heartbeat = {}
                if heartbeat_interval:
                    heartbeat = {
                        "heartbeat_interval": heartbeat_interval,
                        "grace_period": 2 * heartbeat_interval,
                        "heartbeat_stale_trial_callback": (
                            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
                        ),
                    }
                return StudyStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except SQLAlchemyError:
            if attempt == CREATE_TRIES - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")
