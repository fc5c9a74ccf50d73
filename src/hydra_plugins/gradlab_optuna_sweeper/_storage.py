"""The study's database: Optuna's RDBStorage on any SQLAlchemy URL (a SQLite file,
PostgreSQL), shared by the sweeper, its jobs and other workers."""

from __future__ import annotations

import time
import warnings

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

# Seconds a SQLite writer waits for another one's lock before it gives up: several
# processes (workers, their jobs, heartbeats) write one file at once.
SQLITE_LOCK_WAIT_S = 60
# Two processes that create a fresh database at once can race on its tables; the loser
# finds them made by the winner on a second try.
CREATE_TRIES = 5


def shown(url: str) -> str:
    """The URL without its password, for logs and result files."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return url


def open_storage(
    url: str, heartbeat_interval: int | None = None, max_retry: int | None = None
) -> optuna.storages.RDBStorage:
    """RDBStorage on `url`. With a heartbeat interval, RUNNING trials whose worker stopped
    beating for two intervals are failed and retried (up to `max_retry` times) by
    `optuna.storages.fail_stale_trials`."""
    engine_kwargs = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_LOCK_WAIT_S}
    for attempt in range(CREATE_TRIES):
        try:
            with warnings.catch_warnings():
                # Heartbeats are "experimental" in Optuna since 2.9; the sweeper relies on them.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                heartbeat = {}
                if heartbeat_interval:
                    heartbeat = {
                        "heartbeat_interval": heartbeat_interval,
                        "grace_period": 2 * heartbeat_interval,
                        "heartbeat_stale_trial_callback": (
                            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
                        ),
                    }
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except SQLAlchemyError:
            if attempt == CREATE_TRIES - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")
