"""The runs a report compares, read from an MLflow store in a few bulk calls.

One `search_runs` page brings every run's params, tags and latest metric values; per
run, three metric histories (the learning curves and epoch times) and the
`diagnostics/diagnostics.json` artifact, which holds every probe step's per-layer
statistics in one read. Per-layer metric histories are read only for a run that has
diagnostics metrics but lost its artifact. Runs are read on a few threads: each read is
a short round trip to the store, and the store answers several at once.
"""

from __future__ import annotations

import concurrent.futures.thread as pool_module
import math
import statistics
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from experiments.core import names
from experiments.diagnostics.record import ARTIFACT as DIAGNOSTICS_ARTIFACT
from experiments.diagnostics.record import DEPTH_RATIO, DiagnosticsRecord
from experiments.models.naming import block_name, parse_layer_metric

CURVE_KEYS = ("val_accuracy", "loss", "epoch_seconds")
# Per-layer statistics the report draws over depth: (key in diagnostics.json / metric prefix).
PROFILE_STATS = ("grad/signal_std", "act/std")
PAGE_SIZE = 1000
READ_THREADS = 8
# Reading runs one by one takes seconds per hundred on a server: say how far it is.
SAY_EVERY = 200


class ReportError(RuntimeError):
    """Runs that cannot be found or read; the message is one line for the user."""


@dataclass
class RunSummary:
    run_id: str
    name: str
    status: str
    choices: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    diagnostics: DiagnosticsRecord | None = None

    @property
    def failed(self) -> bool:
        return self.status != "FINISHED"

    @property
    def failure_reason(self) -> str | None:
        return self.tags.get(names.FAILURE_REASON_TAG)

    @property
    def epochs(self) -> int:
        return len({step for step, _ in self.curves.get("loss", [])})

    @property
    def seconds_per_epoch(self) -> float | None:
        """The median: the first epoch also pays for tracing the graph."""
        times = [v for _, v in self.curves.get("epoch_seconds", []) if math.isfinite(v)]
        return statistics.median(times) if times else None

    def depth_ratio(self, which: str) -> float | None:
        """At the first probe step ("init") or the last with a finite value ("last")."""
        return self.diagnostics.ratio_at(which) if self.diagnostics else None


@dataclass
class Selection:
    """The runs of one report and the words that say where they came from."""

    runs: list[RunSummary]
    source: str
    experiment: str
    parent_run_id: str | None = None


def select_runs(
    client: MlflowClient,
    experiment: str | None = None,
    parent_run_id: str | None = None,
    filter_string: str | None = None,
    say: Callable[[str], None] | None = None,
) -> Selection:
    """A sweep's children (parent_run_id) or an experiment's runs, optionally filtered.
    Sweep parent runs themselves are left out: they hold counts, not training. `say`
    hears what is read, and how far reading is when there are many runs."""
    if parent_run_id:
        try:
            parent = client.get_run(parent_run_id)
        except MlflowException:
            raise ReportError(
                f"--parent-run {parent_run_id}: no such run in {client.tracking_uri}"
            ) from None
        experiment_id = parent.info.experiment_id
        experiment_name = client.get_experiment(experiment_id).name
        filters = [f"tags.`{names.PARENT_TAG}` = '{parent_run_id}'"]
        source = f"sweep {parent_run_id} ({parent.info.run_name}) in experiment '{experiment_name}'"
    else:
        experiment_name = experiment or names.DEFAULT_EXPERIMENT
        found = client.get_experiment_by_name(experiment_name)
        if found is None:
            known = sorted(e.name for e in client.search_experiments())
            raise ReportError(
                f"--experiment {experiment_name!r}: no such experiment in {client.tracking_uri}"
                f" (known: {', '.join(known) or 'none'})"
            )
        experiment_id = found.experiment_id
        filters = []
        source = f"experiment '{experiment_name}'"
    if filter_string:
        filters.append(filter_string)
        source += f", filter {filter_string!r}"

    runs = [
        run
        for run in _search_all(client, experiment_id, " and ".join(filters))
        if run.data.tags.get(names.SWEEP_TAG) != "true"
    ]
    if parent_run_id:
        runs += _stand_ins(client, parent, filter_string)
        runs += _study_phases(client, experiment_id, runs)
    if not runs:
        raise ReportError(f"no runs to report: {source} has none in {client.tracking_uri}")
    runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
    if say is not None:
        say(f"reading {len(runs)} runs of {source} in {client.tracking_uri}")
    return Selection(read_runs(client, runs, say), source, experiment_name, parent_run_id)


def _study_phases(client: MlflowClient, experiment_id: str, runs: list[Run]) -> list[Run]:
    """The nested runs (pretrain_A, baseline_B, B_on_A) of the transfer studies among a
    sweep's runs: the study's own run holds the comparison, they hold the training."""

    studies = [r.info.run_id for r in runs if r.data.tags.get(names.TRANSFER_STUDY_TAG) == "true"]
    phases: list[Run] = []
    for study_id in studies:
        phases += _search_all(client, experiment_id, f"tags.`{names.PARENT_TAG}` = '{study_id}'")
    return phases


def _stand_ins(client: MlflowClient, parent: Run, filter_string: str | None) -> list[Run]:
    """The earlier FINISHED runs that a resumed sweep skipped instead of re-running (its
    parent's `skipped.<config hash>` tags name them): they are the sweep's results too."""

    ids = sorted({v for k, v in parent.data.tags.items() if k.startswith(names.SKIPPED_TAG_PREFIX)})
    if not ids:
        return []
    if filter_string:  # MLflow's filter grammar has no parentheses: filter here instead
        kept = {
            r.info.run_id for r in _search_all(client, parent.info.experiment_id, filter_string)
        }
        ids = [run_id for run_id in ids if run_id in kept]
    return [client.get_run(run_id) for run_id in ids]


def _search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    found: list[Run] = []
    token = None
    while True:
        try:
            page = client.search_runs(
                [experiment_id],
                filter_string=filter_string,
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=PAGE_SIZE,
                page_token=token,
            )
        except MlflowException as e:
            raise ReportError(f"--filter {filter_string!r}: {e.message}") from None
        found.extend(page)
        token = page.token
        if not token:
            return found


def read_runs(
    client: MlflowClient, runs: list[Run], say: Callable[[str], None] | None = None
) -> list[RunSummary]:
    if sys.is_finalizing() or _threads_shut_down():
        # The report of a sweep that ended on an error is built at interpreter exit,
        # where no thread pool may start: read one run after another.
        return [read_run(client, run) for run in runs]
    read: list[RunSummary] = []
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for summary in pool.map(lambda run: read_run(client, run), runs):
            read.append(summary)
            if say is not None and len(read) % SAY_EVERY == 0 and len(read) < len(runs):
                say(f"read {len(read)} of {len(runs)} runs")
    return read


def _threads_shut_down() -> bool:
    return bool(getattr(pool_module, "_shutdown", False))


def read_run(client: MlflowClient, run: Run) -> RunSummary:
    tags = dict(run.data.tags)
    summary = RunSummary(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id[:8],
        status=run.info.status,
        choices={
            k.removeprefix(names.CHOICE_TAG_PREFIX): v
            for k, v in tags.items()
            if k.startswith(names.CHOICE_TAG_PREFIX)
        },
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags=tags,
    )
    for key in CURVE_KEYS:
        if key in summary.metrics:
            summary.curves[key] = _history(client, summary.run_id, key)
    if any(k == DEPTH_RATIO or k.startswith(PROFILE_STATS) for k in summary.metrics):
        summary.diagnostics = _diagnostics_artifact(client, run) or _diagnostics_metrics(
            client, summary
        )
    return summary


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    """One value per step: a step logged twice keeps its last value."""
    by_step = {m.step: m.value for m in client.get_metric_history(run_id, key)}
    return sorted(by_step.items())


def _read_artifact(client: MlflowClient, run: Run, path: str) -> str:
    """A local artifact store's file is read where it lies: MLflow's download, built for
    remote stores, costs about 0.1 s a file, as long as all the rest of a run's reads."""
    uri = urlparse(run.info.artifact_uri or "")
    if uri.scheme in ("", "file"):
        return (Path(url2pathname(uri.path)) / path).read_text()
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run.info.run_id, path, tmp)).read_text()


def _diagnostics_artifact(client: MlflowClient, run: Run) -> DiagnosticsRecord | None:
    try:
        return DiagnosticsRecord.read(_read_artifact(client, run, DIAGNOSTICS_ARTIFACT))
    except (MlflowException, OSError, ValueError, TypeError):
        return None


def _diagnostics_metrics(client: MlflowClient, summary: RunSummary) -> DiagnosticsRecord | None:
    """The same numbers from per-layer metric histories, for a run without the artifact."""
    stats: dict[str, list[list[float]]] = {}
    layers: list[int] = []
    steps: list[int] = []
    per_layer = [(parsed, key) for key in summary.metrics if (parsed := parse_layer_metric(key))]
    for stat in PROFILE_STATS:
        labelled = sorted((block, key) for (name, block), key in per_layer if name == stat)
        if not labelled:
            continue
        histories = {block: dict(_history(client, summary.run_id, key)) for block, key in labelled}
        steps = sorted({s for h in histories.values() for s in h})
        layers = [block for block, _ in labelled]
        stats[stat] = [[histories[b].get(s, math.nan) for b in layers] for s in steps]
    ratio = [v for _, v in _history(client, summary.run_id, DEPTH_RATIO)]
    if not stats and not ratio:
        return None
    return DiagnosticsRecord(
        layer_names=[block_name(b) for b in layers],
        activation=summary.params.get("activation.name", ""),
        probe_size=0,
        stat_names=tuple(stats),
        epochs=steps,
        stats=stats,
        depth_ratio=ratio,
    )
