"""Runs whose process ended without closing them (SIGKILL, out of memory, a lost
machine) stay RUNNING in MLflow for good. Every run records the host and process that
owns it; any later command on the same store (a run, a sweep, the report) closes the
RUNNING runs of this host whose process is gone as FAILED, saying why.

A process is recognised by its pid and its start time (Linux: /proc/<pid>/stat), so a
pid reused by a newer process does not keep a dead run open.
"""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path

from mlflow.tracking import MlflowClient

from experiments.core import names
from experiments.tracking.recorder import RunRecorder

log = logging.getLogger(__name__)

ORPHAN_REASON = "process ended without closing the run"


def _start_time(pid: int) -> str | None:
    """The process's start, in clock ticks after boot (field 22 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    return stat.rsplit(")", 1)[1].split()[19]


def process_tags() -> dict[str, str]:
    """Who owns a run opened by this process."""
    tags = {names.HOST_TAG: platform.node(), names.PID_TAG: str(os.getpid())}
    start = _start_time(os.getpid())
    if start is not None:
        tags[names.PROCESS_START_TAG] = start
    return tags


def is_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    return start is None or _start_time(pid) in (None, start)


def close_orphans(client: MlflowClient, experiment_ids: list[str]) -> list[str]:
    """Closes as FAILED the RUNNING runs of this host whose process is gone; returns
    their ids."""
    found = client.search_runs(
        experiment_ids,
        filter_string=f"attributes.status = 'RUNNING' and tags.{names.HOST_TAG} = '{platform.node()}'",
        max_results=10000,
    )
    closed = []
    for run in found:
        tags = run.data.tags
        if not tags.get(names.PID_TAG, "").isdigit():
            continue
        if is_alive(int(tags[names.PID_TAG]), tags.get(names.PROCESS_START_TAG)):
            continue
        RunRecorder(client, run.info.run_id).end("FAILED", ORPHAN_REASON)
        closed.append(run.info.run_id)
        log.warning(
            "run %s (%s) was left RUNNING by process %s, which has ended: closed as FAILED",
            run.info.run_id,
            run.info.run_name,
            tags[names.PID_TAG],
        )
    return closed
