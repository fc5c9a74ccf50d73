"""The `diagnostics` group's schema (conf/diagnostics/*.yaml), used by
`diagnostics.run`. Kept apart from it because config-only commands import the schema and
not TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DiagnosticsConfig:
    # Per-layer gradient/activation probe and the training step's gradient check.
    enabled: bool = True
    every_n_epochs: int = 1
    probe_size: int = 512
    plots: bool = True
    # The training step's global norm and finite check; off: Keras' own step and the
    # per-call loss check only (the norm reads every gradient at every step).
    step_norm: bool = True
