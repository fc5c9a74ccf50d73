"""The config schema: one dataclass per group, stored in Hydra's ConfigStore.

Hydra merges every YAML option into these dataclasses, so a misspelt key or a value of
the wrong type fails at compose time with the key's full name, and an Enum field lists
its allowed values. The groups whose options build something (init, activation,
normalization, clipping, optimizer, schedule, data, transfer) keep their schema beside their
builders, in an `Options` registry (`config.registry`); the rest are plain settings and
live here. Range checks that OmegaConf cannot express are in `config.checks`.

Importing this module must stay cheap: config-only commands (`--help`, `--cfg job`, a
bad value) import it and nothing of TensorFlow or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from experiments.config.registry import Options
from experiments.data import DATASETS, DataConfig
from experiments.models.activations import ACTIVATIONS, ActivationConfig
from experiments.models.initializers import INITIALIZERS, InitConfig
from experiments.models.normalization import NORMALIZATIONS, NormalizationConfig
from experiments.training.optimizers import (
    CLIPPINGS,
    OPTIMIZERS,
    ClippingConfig,
    OptimizerConfig,
)
from experiments.training.schedules import SCHEDULES, ScheduleConfig
from experiments.transfer.options import TRANSFERS, TransferConfig


class ResidualStyle(str, Enum):
    # He et al. 2016 (identity mappings): each block is [norm] -> act -> Dense and the
    # sum is left as it is, y = x + F(x): the shortcuts form a clean path to the input.
    pre = "pre"
    # He et al. 2015: the shortcut joins the last block's pre-activation, y = act(x + F(x)).
    post = "post"


@dataclass
class ModelConfig:
    # Explicit widths first, then `repeat` more layers of `repeat_width` units:
    # the 100-layer SELU net is hidden=[300], repeat=99, repeat_width=100.
    hidden: list[int] = field(default_factory=lambda: [300, 100])
    repeat: int = 0
    repeat_width: int = 100
    # Skip connections around every `residual_every` hidden blocks (models.blocks).
    residual: bool = False
    residual_every: int = 2
    residual_style: ResidualStyle = ResidualStyle.pre
    # The branch's factor, x + scale * F(x); null: 1/sqrt(number of skips), which keeps an
    # unnormalized residual net's activations at their scale at initialization.
    residual_scale: float | None = None

    def hidden_sizes(self) -> list[int]:
        return list(self.hidden) + [self.repeat_width] * self.repeat


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
    verbose: int = 2


@dataclass
class TrackingConfig:
    experiment: str = "gradient-lab"
    # null: $MLFLOW_TRACKING_URI, else sqlite:///<launch folder>/mlflow.db
    uri: str | None = None
    log_model: bool = True
    # In a multirun, skip a job whose identical config already FINISHED (tracking.resume).
    skip_finished: bool = True
    # CPU, memory, disk and network as `system/*` metrics, by MLflow's own sampler (the
    # `system-metrics` extra brings psutil), every `system_metrics_interval` seconds.
    system_metrics: bool = False
    system_metrics_interval: float = 10.0


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


@dataclass
class Config:
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    init: InitConfig = MISSING
    activation: ActivationConfig = MISSING
    normalization: NormalizationConfig = MISSING
    clipping: ClippingConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = MISSING
    tracking: TrackingConfig = MISSING
    transfer: TransferConfig = field(default_factory=TransferConfig)
    diagnostics: DiagnosticsConfig = MISSING


# The groups whose options are registered with the fields each one uses.
GROUP_OPTIONS: dict[str, Options] = {
    "init": INITIALIZERS,
    "activation": ACTIVATIONS,
    "normalization": NORMALIZATIONS,
    "clipping": CLIPPINGS,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "data": DATASETS,
    "transfer": TRANSFERS,
}


def register_schemas() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)


register_schemas()
