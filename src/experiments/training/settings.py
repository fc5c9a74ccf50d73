"""The `training` group's schema (conf/training/*.yaml), used by `training.loop`. Kept
apart from the loop because config-only commands import the schema and not Keras."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 32
    seed: int = 42
    # Speed settings: results depend on none of them.
    steps_per_execution: int = 50
    eval_batch_size: int = 1024
    jit_compile: bool = False
    # Cap on steps per epoch, for smoke runs on the real data; null means a full epoch.
    steps_per_epoch: int | None = None
    # Keras' output: null is its progress bar on a terminal and one line per epoch in a
    # log file (`verbose_on`); 0, 1 or 2 as Keras reads them.
    verbose: int | None = None
    # A checkpoint after every epoch, from which a stopped run continues in the same
    # MLflow run (runs.continuation): null is on under the cluster launchers (submitit),
    # off elsewhere; true or false for every launcher and single runs.
    checkpoint: bool | None = None

    def verbose_on(self, terminal: bool) -> int:
        if self.verbose is not None:
            return self.verbose
        return 1 if terminal else 2
