"""How far a sweep is, said as each job ends: one line on stderr (it reads the same in a
log file as on a terminal) and the same words on the sweep's parent run, where the MLflow
UI shows them while the sweep runs.

    sweep: 3 of 8 ended: job elu-he_normal-none-none-sgd FINISHED, val_accuracy 0.8412;
    best so far 0.8523; elapsed 1m12s, about 2m00s left

Any launcher: the job itself says it, in its own process, so a joblib or Ray worker
needs nothing from the launching process but the sweep's size and start (which travel in
the job's environment, as the parent run's id does) and the sweep folder, where a small
file under a lock counts the jobs that ended. The estimate is the sweep's pace so far
(elapsed / ended), so jobs side by side are accounted for.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from experiments.core import names

FILE = ".progress.jsonl"
HEADLINE = "val_accuracy"
log = logging.getLogger(__name__)
# What the launching process sets for its sweep's jobs (and removes at its end).
ENVIRONMENT = (
    names.SWEEP_PARENT_ENV,
    names.SWEEP_STARTED_ENV,
    names.SWEEP_JOBS_ENV,
    names.SWEEP_PROGRESS_FILE_ENV,
    names.SWEEP_TRACKING_URI_ENV,
)


@dataclass
class Ended:
    """One finished job, as the progress file keeps it."""

    name: str
    status: str
    value: float | None = None
    trial: int | None = None


def start(sweep_dir: Path, jobs: int | None, tracking_uri: str) -> dict[str, str]:
    """A new count in `sweep_dir` (a sweep started again there counts from zero); the
    environment every job gets so that it can say how far the sweep is. A folder that
    cannot be written counts nothing: the sweep itself says why it cannot run there."""
    env = {
        names.SWEEP_STARTED_ENV: f"{time.time():.3f}",
        names.SWEEP_TRACKING_URI_ENV: tracking_uri,
    }
    counter = (sweep_dir / FILE).resolve()
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        counter.write_text("")
        env[names.SWEEP_PROGRESS_FILE_ENV] = str(counter)
    except OSError as e:
        log.debug("sweep progress not counted in %s: %s", sweep_dir, e)
    if jobs:
        env[names.SWEEP_JOBS_ENV] = str(jobs)
    return env


def job_ended(ended: Ended) -> str | None:
    """Counts the job in, says its line on stderr and on the sweep's parent run, and
    returns it; None where this job is not counted (no sweep started by the lab's
    callback, a progress file that cannot be written). Never raises: progress is told,
    not needed."""
    env = os.environ
    if names.SWEEP_STARTED_ENV not in env or names.SWEEP_PROGRESS_FILE_ENV not in env:
        return None
    try:
        count, best = _append(Path(env[names.SWEEP_PROGRESS_FILE_ENV]), ended)
    except OSError as e:
        log.debug("sweep progress not counted: %s", e)
        return None
    jobs = env.get(names.SWEEP_JOBS_ENV)
    elapsed = time.time() - float(env[names.SWEEP_STARTED_ENV])
    line = progress_line(count, int(jobs) if jobs else None, ended, best, elapsed)
    print(line, file=sys.stderr, flush=True)
    _tell_parent(line)
    return line


def _tell_parent(line: str) -> None:
    parent = os.environ.get(names.SWEEP_PARENT_ENV)
    uri = os.environ.get(names.SWEEP_TRACKING_URI_ENV)
    if not parent or not uri:
        return
    try:
        # MLflow is loaded by every job that reached its store; one that failed before
        # (a bad config) pays for it here.
        from mlflow import MlflowClient

        MlflowClient(uri).set_tag(parent, names.SWEEP_PROGRESS_TAG, line[:5000])
    except Exception as e:  # noqa: BLE001 - the store may be why the job failed
        log.debug("sweep progress not recorded on run %s: %s", parent, e)


def _append(path: Path, ended: Ended) -> tuple[int, Ended | None]:
    """Appends the job whole under an exclusive lock; returns how many jobs have ended,
    this one included, and the best of them by the headline value (an accuracy: the
    highest)."""
    with open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            earlier = [Ended(**json.loads(line)) for line in f if line.strip()]
            f.write(json.dumps(ended.__dict__) + "\n")
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    done = earlier + [ended]
    valued = [e for e in done if e.value is not None and math.isfinite(e.value)]
    if not valued:
        return len(done), None
    return len(done), max(valued, key=lambda e: e.value)


def progress_line(
    count: int, jobs: int | None, ended: Ended, best: Ended | None, elapsed: float
) -> str:
    what = f"trial {ended.trial}" if ended.trial is not None else "job"
    of = f" of {jobs}" if jobs else ""
    value = f", {HEADLINE} {ended.value:.4f}" if ended.value is not None else ""
    best_part = ""
    if best is not None and count > 1:
        where = f" (trial {best.trial})" if best.trial is not None else ""
        best_part = f"; best so far {best.value:.4f}{where}"
    left = ""
    if jobs and count < jobs:
        left = f", about {duration(elapsed / count * (jobs - count))} left"
    return (
        f"sweep: {count}{of} ended: {what} {ended.name} {ended.status}{value}{best_part}; "
        f"elapsed {duration(elapsed)}{left}"
    )


def planned_jobs(sweeper, task_overrides: list[str]) -> int | None:
    """How many jobs the sweep will launch: an optimizing sweeper's `n_trials`, or the
    basic sweeper's cross product of its params and the command line's sweeps (counted
    as it counts them); None for a sweeper that says neither."""
    if sweeper.get("n_trials") is not None:  # each trial a job per seed
        return int(sweeper.n_trials) * int(sweeper.get("seeds_per_trial") or 1)
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(params + list(task_overrides))
    return sum(len(batch) for batch in BasicSweeper.split_arguments(parsed, None))


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`: short, and exact enough for an estimate."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
