"""Resuming a sweep: a job whose identical config already FINISHED in the experiment is
skipped, so re-running an interrupted multirun adds only the runs it lacks.

Every run carries a `config_hash` tag: a digest of its resolved config without the keys
that cannot change what it computes (where runs are recorded, how much is printed, speed
settings, the data's folder). A job looks the digest up before it opens its run.
`tracking.skip_finished=false` runs every job again.
"""

from __future__ import annotations

import logging

from experiments.core import names

log = logging.getLogger(__name__)


def finished_run(client, experiment_id: str, digest: str):
    """The latest FINISHED run of the experiment with this config digest, or None."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.{names.HASH_TAG} = '{digest}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None


def skip(client, earlier, digest: str, parent_run_id: str | None) -> dict[str, float]:
    """Notes the skip on the sweep's parent run and returns the earlier run's final
    metrics, so an optimizing sweeper still sees this config's values."""
    run_id = earlier.info.run_id
    log.info(
        "skipped: this config already FINISHED in run %s (%s); "
        "tracking.skip_finished=false runs it again",
        run_id,
        earlier.info.run_name,
    )
    if parent_run_id:
        client.set_tag(parent_run_id, names.SKIPPED_TAG_PREFIX + digest, run_id)
    return dict(earlier.data.metrics)


def skipped_count(parent_run) -> int:
    return sum(1 for key in parent_run.data.tags if key.startswith(names.SKIPPED_TAG_PREFIX))
