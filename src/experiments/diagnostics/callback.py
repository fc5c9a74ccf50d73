"""The probe during training: at the start (step 0 = before any update), after every
n-th epoch and after the last one; the training step's norms each epoch; its
non-finite stop turned into a failure record naming the epoch and, when known, the
layer."""

from __future__ import annotations

import time
from collections.abc import Callable

import keras

from experiments.diagnostics.probe import Probe
from experiments.diagnostics.record import DiagnosticsRecord
from experiments.models.monitored import StepMonitor, locate_failure


class DiagnosticsCallback(keras.callbacks.Callback):
    """Runs the probe and keeps what it and the training step measured in `record`;
    metrics go to `log_metrics` with step = epochs completed (after `step_offset`)."""

    def __init__(
        self,
        probe: Probe,
        record: DiagnosticsRecord,
        log_metrics: Callable[[dict[str, float], int], None],
        every_n_epochs: int,
        monitor: StepMonitor | None,
        step_offset: int = 0,
    ):
        super().__init__()
        self.probe = probe
        self.record = record
        self.log_metrics = log_metrics
        self.every_n_epochs = every_n_epochs
        self.monitor = monitor
        self.step_offset = step_offset
        self._epochs_done = 0
        self.probe_seconds: list[float] = []  # wall time of each probe (the first compiles)

    def resume_at(self, epochs_done: int) -> None:
        """A run continued after `epochs_done` epochs (its record restored): the last
        state is probed at the end even if no epoch is left to run."""
        self._epochs_done = epochs_done

    def run_probe(self, step: int) -> None:
        if step in self.record.epochs:
            return
        started = time.perf_counter()
        values = self.probe()
        self.probe_seconds.append(time.perf_counter() - started)
        self.log_metrics(self.record.add_probe(step, values), step)

    def on_train_begin(self, logs=None):
        if self.monitor is not None:
            self.monitor.clear_failure()
        self.run_probe(self.step_offset)

    def on_epoch_begin(self, epoch, logs=None):
        if self.monitor is not None:
            self.monitor.reset_epoch()

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + self.step_offset
        self._epochs_done = epoch + 1
        if self.monitor is not None:
            norms = self.monitor.epoch_norms()
            if norms is not None:
                self.log_metrics(self.record.add_epoch_norms(step, norms), step)
            if self.monitor.failure is not None and self.record.failure is None:
                self.record.failure = self._failure(step)
        if (epoch + 1) % self.every_n_epochs == 0:
            self.run_probe(step + 1)

    def _failure(self, epoch: int) -> dict:
        """The step's failure. A non-finite gradient names its layer itself; a non-finite
        loss is located by re-running a step on the probe batch with the weights it left
        unchanged (the failing batch is gone; a blow-up of the weights shows on any)."""
        failure = self.monitor.failure
        layer = failure.block
        if failure.where == "forward":
            where, block = locate_failure(self.model, self.probe.x, self.probe.y)
            layer = block if where == "forward" else None
        what = "loss (forward pass)" if failure.where == "forward" else "gradient norm"
        place = f"; first in hidden block {layer}" if layer else "; layer not found"
        return {
            "epoch": epoch,
            "step": failure.step,
            "where": failure.where,
            "layer": layer,
            "reason": f"non-finite {what} at epoch {epoch}, step {failure.step}{place}",
        }

    def on_train_end(self, logs=None):
        # The last state is always probed, whatever every_n_epochs says.
        if self._epochs_done:
            self.run_probe(self._epochs_done + self.step_offset)
