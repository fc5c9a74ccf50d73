"""A run's gradient diagnostics, put together: probe batch, compiled probe, callback and
the training step's monitor for one model, then its failure and artifacts at the end."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from experiments.diagnostics.callback import DiagnosticsCallback
from experiments.diagnostics.plots import diagnostics_plots
from experiments.diagnostics.probe import Probe, probe_batch
from experiments.diagnostics.record import FOLDER, DiagnosticsRecord
from experiments.diagnostics.settings import DiagnosticsConfig
from experiments.models.monitored import MonitoredStep, StepMonitor
from experiments.training.loop import Outcome

log = logging.getLogger(__name__)


@dataclass
class RunDiagnostics:
    """What a run needs: the callbacks for `fit`, then the failure and the artifacts."""

    record: DiagnosticsRecord
    callback: DiagnosticsCallback
    make_plots: bool = True

    @classmethod
    def setup(
        cls,
        model: keras.Model,
        x_val: np.ndarray,
        y_val: np.ndarray,
        cfg: DiagnosticsConfig,
        activation: str,
        seed: int,
        log_metrics: Callable[[dict[str, float], int], None],
        step_offset: int = 0,
    ) -> RunDiagnostics:
        """Attaches the training step's monitor when the model has the monitored step."""
        x, y = probe_batch(x_val, y_val, cfg.probe_size, seed)
        probe = Probe(model, x, y, activation)
        monitor = None
        if cfg.step_norm and isinstance(model, MonitoredStep):
            monitor = StepMonitor()
            model.attach_monitor(monitor)
        elif cfg.step_norm:
            log.warning(
                "%s has no monitored training step: no global gradient norm, no step-level "
                "finite check",
                type(model).__name__,
            )
        record = DiagnosticsRecord(
            layer_names=[b.dense.name for b in probe.blocks],
            activation=activation,
            probe_size=probe.size,
            stat_names=probe.stats,
        )
        callback = DiagnosticsCallback(
            probe, record, log_metrics, cfg.every_n_epochs, monitor, step_offset
        )
        return cls(record, callback, cfg.plots)

    @property
    def callbacks(self) -> list[keras.callbacks.Callback]:
        return [self.callback]

    def state(self) -> dict:
        """The record as a checkpoint keeps it (every value as measured: inf stays inf)."""
        return dataclasses.asdict(self.record)

    def resume(self, state: dict, epochs_done: int) -> None:
        """The record of a run continued from its checkpoint, after `epochs_done` epochs."""
        for name, value in state.items():
            setattr(self.record, name, tuple(value) if name == "stat_names" else value)
        self.callback.resume_at(epochs_done)

    def apply_failure(self, outcome: Outcome) -> None:
        """The training step's failure is the earliest and most precise one: it wins."""
        failure = self.record.failure
        if failure is not None:
            outcome.failed_epoch = failure["epoch"]
            outcome.reason = failure["reason"]

    def failure_tags(self) -> dict[str, object]:
        failure = self.record.failure
        if failure is None:
            return {}
        tags: dict[str, object] = {"failed_step": failure["step"], "failed_in": failure["where"]}
        if failure["layer"]:
            tags["failed_layer"] = failure["layer"]
            tags["failed_layer_name"] = self.record.layer_names[failure["layer"] - 1]
        return tags

    def write_artifacts(self, output_dir: Path) -> list[tuple[Path, str]]:
        folder = output_dir / FOLDER
        written = [(self.record.write(folder), FOLDER)]
        if self.make_plots and self.record.epochs:
            written += [(path, "plots") for path in diagnostics_plots(self.record, folder)]
        return written
