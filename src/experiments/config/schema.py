"""The config schema: the groups' dataclasses assembled into one, stored in Hydra's
ConfigStore.

Hydra merges every YAML option into these dataclasses, so a misspelt key or a value of
the wrong type fails at compose time with the key's full name, and an Enum field lists
its allowed values. Each group's schema lives beside the code that uses it: the groups
whose options build something (init, activation, normalization, clipping, optimizer,
schedule, data, transfer) in an `Options` registry (`core.options`) beside their
builders, the plain settings (model, training, tracking, diagnostics) in their package's
`settings` module. Only this package imports them all. Range checks that OmegaConf
cannot express are in `config.checks`.

Importing this module must stay cheap: config-only commands (`--help`, `--cfg job`, a
bad value) import it and nothing of TensorFlow or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from experiments.core.options import Options
from experiments.data import DATASETS, DataConfig
from experiments.diagnostics.settings import DiagnosticsConfig
from experiments.models.activations import ACTIVATIONS, ActivationConfig
from experiments.models.initializers import INITIALIZERS, InitConfig
from experiments.models.normalization import NORMALIZATIONS, NormalizationConfig
from experiments.models.settings import ModelConfig
from experiments.tracking.settings import TrackingConfig
from experiments.training.optimizers import (
    CLIPPINGS,
    OPTIMIZERS,
    ClippingConfig,
    OptimizerConfig,
)
from experiments.training.schedules import SCHEDULES, ScheduleConfig
from experiments.training.settings import TrainingConfig
from experiments.transfer.options import TRANSFERS, TransferConfig


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
