"""One MLflow run from its start to its end, as the store sees it: open with MLflow's own
context tags, records that a failing store cannot stop (`ResilientRecorder`), files made
where they can be (`made`: the output folder, else the spill folder), the end, once,
whatever ends it (`closing`). What a run does between (evaluate, artifacts, the gradient
verdict) is `runs.lifecycle`'s, the one owner of every run's lifecycle.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from experiments.core import names, stopping
from experiments.tracking.datasets import dataset_records
from experiments.tracking.logged_model import save
from experiments.tracking.recorder import RunRecorder, context_tags
from experiments.tracking.resilient import ResilientRecorder
from experiments.tracking.spill import spill_folder

T = TypeVar("T")


class RunSession(ResilientRecorder):
    """The run's records (see `ResilientRecorder`: none of its calls raises), opened,
    ended once, ended on an error."""

    def __init__(self, recorder: RunRecorder, output_dir: Path):
        super().__init__(recorder, output_dir)
        self.ended = False
        self.status: str | None = None  # as the run ended
        self._system_metrics = None
        # The gradient verdict (runs.lifecycle sets it), and what runs just before the end.
        self.verdict = None
        self.before_end: Callable[[str], None] | None = None
        self.continued = False  # an earlier run, continued from its checkpoint

    @classmethod
    def open(
        cls,
        client,
        experiment_id: str,
        name: str,
        tags: dict[str, Any],
        output_dir: Path,
        parent_run_id: str | None = None,
        description: str | None = None,
    ) -> RunSession:
        """The run, with MLflow's context tags, `tags` and `description` as its note
        (`recorder.context_tags`)."""
        output_dir.mkdir(parents=True, exist_ok=True)
        all_tags = context_tags(tags, description)
        return cls(
            RunRecorder.start(client, experiment_id, name, all_tags, parent_run_id), output_dir
        )

    @classmethod
    def reopen(cls, client, run_id: str, tags: dict[str, Any], output_dir: Path) -> RunSession:
        """An earlier run of this configuration, RUNNING again in this process (continued
        from its checkpoint), with `tags` updated (its process, its folder). Its metrics so
        far count as its latest values until this process logs newer ones."""
        output_dir.mkdir(parents=True, exist_ok=True)
        earlier = client.get_run(run_id).data
        # How the earlier process ended is no longer how the run ends.
        for stale in (names.FAILURE_REASON_TAG, *names.HEALTH_TAGS):
            if stale in earlier.tags:
                client.delete_tag(run_id, stale)
        client.update_run(run_id, status="RUNNING")
        session = cls(RunRecorder(client, run_id), output_dir)
        session.set_tags(tags)
        session._final.update({key: (-1, float(v)) for key, v in earlier.metrics.items()})
        session.continued = True
        return session

    def holds(self, key: str, step: int) -> bool:
        """Whether a continued run's store already has `key` at `step` (an earlier process
        logged it before it stopped); False for a run this process opened."""
        if not self.continued:
            return False
        try:
            return any(m.step == step for m in self.client.get_metric_history(self.run_id, key))
        except Exception:  # noqa: BLE001 - a store that fails: log it again, kept if need be
            return False

    def log_files(self, written: Iterable[tuple[Path, str | None]]) -> None:
        for path, folder in written:
            self.log_artifact(path, folder)

    def log_splits(self, splits, name: str, source: Any) -> None:
        """The run's training, validation and test data as its dataset inputs."""
        self.log_datasets(dataset_records(splits, name, source))

    def log_trained_model(self, model, example, step: int) -> None:
        """The model saved in the output folder (or, on a full disk, the spill folder),
        then as the run's Logged Model."""
        folder = self.made(lambda base: save(model, example, base / "model", self.run_id), "model")
        if folder is not None:
            self.log_model(folder, step, list(names.MODEL_METRICS))

    def log_made(self, make: Callable[[Path], list[tuple[Path, str | None]]], what: str) -> None:
        """Files `make` writes in a folder, logged (see `made`)."""
        written = self.made(make, what)
        if written is not None:
            self.log_files(written)

    def made(self, make: Callable[[Path], T], what: str) -> T | None:
        """`make(folder)` in the output folder; if that folder refuses (a full disk, a
        read-only folder), what it left there is removed and it is made in the run's
        spill folder instead; if that fails too, `what` is named as unwritten and None
        returned. Training is over by now: a file that cannot be written costs that
        file, never the run's end."""
        try:
            return _leaving_nothing_on_failure(make, self.output_dir)
        except OSError as e:
            self.note_write_failure(what, e, self.output_dir)
        try:
            made = _leaving_nothing_on_failure(make, self.spill_folder())
            self.spilled.append(what)
            return made
        except OSError as e:
            self.note_write_failure(what, e, spill_folder(self.run_id))
        self.note_unwritten(what)
        return None

    def monitor_system(self, interval: float) -> None:
        """CPU, memory, disk and network every `interval` seconds as `system/*` metrics,
        by MLflow's own sampler (a thread of this process) until the run ends."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self._system_metrics = SystemMetricsMonitor(
            self.run_id,
            sampling_interval=interval,
            # A continued run's samples go on after the earlier process's steps.
            resume_logging=self.continued,
            tracking_uri=self.client.tracking_uri,
        )
        self._system_metrics.start()

    def end(self, status: str, reason: str | None = None) -> None:
        """Ends the run once; a later call (an error after the end) changes nothing.
        `before_end` (set by the run's owner: runs.lifecycle) runs first, with the
        status."""
        if not self.ended:
            self.ended = True
            self.status = status
            if self._system_metrics is not None:
                self._system_metrics.finish()
            if self.before_end is not None:
                self.before_end(status)
            super().end(status, reason)

    @contextmanager
    def closing(self, plain: tuple[type[BaseException], ...] = ()) -> Iterator[RunSession]:
        """Ends the run KILLED on Ctrl-C, SIGTERM or an exit and FAILED on an error, then lets the
        error go on. The reason names the error's type, but for the `plain` types, whose
        messages say it all (a data file that cannot be read)."""
        try:
            yield self
        except KeyboardInterrupt as e:
            self.end("KILLED", stopping.interrupted_reason(e))
            raise
        except SystemExit as e:
            # Only something outside the run asks for an exit mid-run: submitit does when
            # Slurm preempts the job, after requeuing it (the run is continued then).
            self.end("KILLED", f"stopped: the process was told to exit (code {e.code})")
            raise
        except plain as e:
            self.end("FAILED", str(e)[:5000])
            raise
        except BaseException as e:
            self.end("FAILED", f"{type(e).__name__}: {e}"[:5000])
            raise


def _leaving_nothing_on_failure(make: Callable[[Path], T], folder: Path) -> T:
    """`make(folder)`; if it raises OSError, the files and folders it added go (a file
    cut short by a full disk is no artifact, and removing it gives the space back)."""
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.rglob("*"))
    try:
        return make(folder)
    except OSError:
        for path in sorted(set(folder.rglob("*")) - before, reverse=True):  # deepest first
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
