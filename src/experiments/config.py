"""Config schemas and value checks.

Hydra merges every YAML option into these dataclasses, so a misspelt key or a value of
the wrong type fails at compose time with the key's full name, and an Enum field lists
its allowed values. OmegaConf has no range checks, so `validate` adds them: it runs
first in every job, before TensorFlow or MLflow are imported.

Each group has one schema whose option-specific fields default to None; an option YAML
sets the ones it uses, and `validate` rejects a field set for an option that ignores it
(`activation=relu activation.alpha=2` would otherwise be silently dropped).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value that composes but cannot be used; the message names the key."""


class InitName(str, Enum):
    glorot_uniform = "glorot_uniform"
    glorot_normal = "glorot_normal"
    he_normal = "he_normal"
    he_uniform = "he_uniform"
    lecun_normal = "lecun_normal"
    lecun_uniform = "lecun_uniform"
    orthogonal = "orthogonal"
    variance_scaling = "variance_scaling"
    random_normal = "random_normal"


class Mode(str, Enum):
    fan_in = "fan_in"
    fan_out = "fan_out"
    fan_avg = "fan_avg"


class Distribution(str, Enum):
    truncated_normal = "truncated_normal"
    untruncated_normal = "untruncated_normal"
    uniform = "uniform"


class ActivationName(str, Enum):
    sigmoid = "sigmoid"
    tanh = "tanh"
    relu = "relu"
    leaky_relu = "leaky_relu"
    prelu = "prelu"
    elu = "elu"
    selu = "selu"
    gelu = "gelu"
    swish = "swish"


class NormalizationName(str, Enum):
    none = "none"
    batchnorm = "batchnorm"


class Position(str, Enum):
    after = "after"
    before = "before"


class ClippingName(str, Enum):
    none = "none"
    value = "value"
    norm = "norm"
    global_norm = "global_norm"


class OptimizerName(str, Enum):
    sgd = "sgd"
    adam = "adam"
    nadam = "nadam"
    rmsprop = "rmsprop"


class DataName(str, Enum):
    fashion_mnist = "fashion_mnist"
    synthetic = "synthetic"


class TransferName(str, Enum):
    none = "none"
    study = "study"


@dataclass
class InitConfig:
    name: InitName = InitName.glorot_uniform
    scale: float | None = None
    mode: Mode | None = None
    distribution: Distribution | None = None
    stddev: float | None = None


@dataclass
class ActivationConfig:
    name: ActivationName = ActivationName.relu
    negative_slope: float | None = None
    alpha: float | None = None


@dataclass
class NormalizationConfig:
    name: NormalizationName = NormalizationName.none
    position: Position | None = None
    input_bn: bool | None = None


@dataclass
class ClippingConfig:
    name: ClippingName = ClippingName.none
    threshold: float | None = None


@dataclass
class OptimizerConfig:
    name: OptimizerName = OptimizerName.sgd
    learning_rate: float = 1e-3
    momentum: float | None = None
    nesterov: bool | None = None
    beta_1: float | None = None
    beta_2: float | None = None
    rho: float | None = None


@dataclass
class ModelConfig:
    # Explicit widths first, then `repeat` more layers of `repeat_width` units:
    # the 100-layer SELU net is hidden=[300], repeat=99, repeat_width=100.
    hidden: list[int] = field(default_factory=lambda: [300, 100])
    repeat: int = 0
    repeat_width: int = 100

    def hidden_sizes(self) -> list[int]:
        return list(self.hidden) + [self.repeat_width] * self.repeat


@dataclass
class DataConfig:
    name: DataName = DataName.fashion_mnist
    dir: str | None = None
    validation_size: int = 5000
    standardize: bool = False
    # synthetic only
    train_size: int | None = None
    test_size: int | None = None
    image_size: int | None = None
    num_classes: int | None = None
    noise: float | None = None


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
    # In a multirun, skip a job whose identical config already FINISHED (resume.py).
    skip_finished: bool = True


@dataclass
class TransferConfig:
    """The reuse-of-pretrained-layers study (transfer=study): model A trains on every
    class but `task_b_classes` for training.epochs; task B is those two classes (1 = the
    second one) with `train_size_b` training images."""

    name: TransferName = TransferName.none
    task_b_classes: list[int] | None = None
    train_size_b: int | None = None
    baseline_epochs: int | None = None
    freeze_epochs: int | None = None
    finetune_epochs: int | None = None
    finetune_learning_rate: float | None = None
    # Which reused layers unfreeze for fine-tuning: all | none | hidden_NN (that block and above).
    trainable_from: str | None = None
    # Load model A from this run's model/model.keras instead of training it.
    source_run_id: str | None = None


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
    training: TrainingConfig = MISSING
    tracking: TrackingConfig = MISSING
    transfer: TransferConfig = field(default_factory=TransferConfig)
    diagnostics: DiagnosticsConfig = MISSING


def register_schemas() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)


register_schemas()


# Which option-specific fields each option may set; every other one must stay null.
_OPTION_FIELDS: dict[str, dict[str, set[str]]] = {
    "init": {
        "variance_scaling": {"scale", "mode", "distribution"},
        "random_normal": {"stddev"},
    },
    "activation": {"leaky_relu": {"negative_slope"}, "elu": {"alpha"}},
    "normalization": {"batchnorm": {"position", "input_bn"}},
    "clipping": {"value": {"threshold"}, "norm": {"threshold"}, "global_norm": {"threshold"}},
    "optimizer": {
        "sgd": {"momentum", "nesterov"},
        "adam": {"beta_1", "beta_2"},
        "nadam": {"beta_1", "beta_2"},
        "rmsprop": {"rho", "momentum"},
    },
    "data": {"synthetic": {"train_size", "test_size", "image_size", "num_classes", "noise"}},
    "transfer": {
        "study": {
            "task_b_classes",
            "train_size_b",
            "baseline_epochs",
            "freeze_epochs",
            "finetune_epochs",
            "finetune_learning_rate",
            "trainable_from",
        }
    },
}
_ALWAYS_SET = {"name"}
_GROUP_COMMON = {
    "optimizer": {"learning_rate"},
    "data": {"dir", "validation_size", "standardize"},
    "transfer": {"source_run_id"},  # optional under transfer=study, checked in _check_transfer
}


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{key}={_show(value)} is not allowed: {allowed}")


def _show(value: Any) -> str:
    return value.value if isinstance(value, Enum) else repr(value)


def _check_option_fields(group: str, node: Any) -> None:
    option = node.name.value
    allowed = _OPTION_FIELDS.get(group, {}).get(option, set())
    common = _GROUP_COMMON.get(group, set()) | _ALWAYS_SET
    for key, value in vars(node).items():
        if key in common:
            continue
        if key in allowed and value is None:
            _fail(f"{group}.{key}", value, f"{group}={option} needs a value")
        if key not in allowed and value is not None:
            users = sorted(o for o, keys in _OPTION_FIELDS.get(group, {}).items() if key in keys)
            _fail(f"{group}.{key}", value, f"only {group}={'|'.join(users)} uses it")


def _positive(key: str, value: float | int | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        _fail(key, value, "must be > 0")


def _at_least(key: str, value: int | None, low: int) -> None:
    if value is not None and value < low:
        _fail(key, value, f"must be >= {low}")


def _in_unit_interval(key: str, value: float | None, *, closed_low: bool) -> None:
    if value is None:
        return
    ok = (0 <= value < 1) if closed_low else (0 < value < 1)
    if not ok:
        _fail(key, value, "must be in [0, 1)" if closed_low else "must be in (0, 1)")


def check(cfg: Config) -> Config:
    """Range checks OmegaConf cannot express; raises ConfigError naming the first bad key."""
    for group in ("init", "activation", "normalization", "clipping", "optimizer", "data"):
        _check_option_fields(group, getattr(cfg, group))
    _check_transfer(cfg)

    _positive("init.scale", cfg.init.scale)
    _positive("init.stddev", cfg.init.stddev)
    if cfg.activation.negative_slope is not None and not cfg.activation.negative_slope >= 0:
        _fail("activation.negative_slope", cfg.activation.negative_slope, "must be >= 0")
    _positive("activation.alpha", cfg.activation.alpha)
    _positive("clipping.threshold", cfg.clipping.threshold)

    opt = cfg.optimizer
    _positive("optimizer.learning_rate", opt.learning_rate)
    _in_unit_interval("optimizer.momentum", opt.momentum, closed_low=True)
    _in_unit_interval("optimizer.beta_1", opt.beta_1, closed_low=True)
    _in_unit_interval("optimizer.beta_2", opt.beta_2, closed_low=True)
    _in_unit_interval("optimizer.rho", opt.rho, closed_low=False)
    if opt.nesterov and not opt.momentum:
        _fail("optimizer.nesterov", opt.nesterov, "needs optimizer.momentum > 0")

    model = cfg.model
    if not model.hidden and model.repeat == 0:
        _fail(
            "model.hidden", list(model.hidden), "at least one hidden layer (or model.repeat >= 1)"
        )
    for i, width in enumerate(model.hidden):
        if width < 1:
            _fail(f"model.hidden[{i}]", width, "layer sizes must be >= 1")
    _at_least("model.repeat", model.repeat, 0)
    _at_least("model.repeat_width", model.repeat_width, 1)

    data = cfg.data
    _at_least("data.validation_size", data.validation_size, 1)
    _at_least("data.train_size", data.train_size, 1)
    _at_least("data.test_size", data.test_size, 1)
    _at_least("data.image_size", data.image_size, 1)
    _at_least("data.num_classes", data.num_classes, 2)
    if data.noise is not None and not data.noise >= 0:
        _fail("data.noise", data.noise, "must be >= 0")
    if data.name is DataName.fashion_mnist and data.validation_size >= 60000:
        _fail("data.validation_size", data.validation_size, "must be < 60000 (the training set)")
    if data.name is DataName.synthetic and data.validation_size >= (data.train_size or 0):
        _fail("data.validation_size", data.validation_size, "must be < data.train_size")

    train = cfg.training
    _at_least("training.epochs", train.epochs, 1)
    _at_least("training.batch_size", train.batch_size, 1)
    _at_least("training.steps_per_execution", train.steps_per_execution, 1)
    _at_least("training.eval_batch_size", train.eval_batch_size, 1)
    _at_least("training.steps_per_epoch", train.steps_per_epoch, 1)
    if train.verbose not in (0, 1, 2):
        _fail("training.verbose", train.verbose, "one of 0, 1, 2")

    _at_least("diagnostics.every_n_epochs", cfg.diagnostics.every_n_epochs, 1)
    _at_least("diagnostics.probe_size", cfg.diagnostics.probe_size, 1)

    if not cfg.tracking.experiment.strip():
        _fail("tracking.experiment", cfg.tracking.experiment, "a non-empty experiment name")
    return cfg


def _check_transfer(cfg: Config) -> None:
    t = cfg.transfer
    _check_option_fields("transfer", t)
    if t.name is TransferName.none:
        if t.source_run_id is not None:
            _fail("transfer.source_run_id", t.source_run_id, "only transfer=study uses it")
        return
    classes = list(t.task_b_classes)
    n_classes = cfg.data.num_classes if cfg.data.name is DataName.synthetic else 10
    if n_classes - 2 < 2:
        _fail("data.num_classes", n_classes, "transfer=study needs >= 4 (task A keeps the rest)")
    if len(classes) != 2 or len(set(classes)) != 2 or not all(0 <= c < n_classes for c in classes):
        _fail(
            "transfer.task_b_classes",
            classes,
            f"two distinct classes in 0-{n_classes - 1} (the second one is label 1)",
        )
    _at_least("transfer.train_size_b", t.train_size_b, 1)
    _at_least("transfer.baseline_epochs", t.baseline_epochs, 1)
    _at_least("transfer.freeze_epochs", t.freeze_epochs, 0)
    _at_least("transfer.finetune_epochs", t.finetune_epochs, 0)
    if t.freeze_epochs + t.finetune_epochs < 1:
        _fail(
            "transfer.finetune_epochs", t.finetune_epochs, "freeze + fine-tune epochs must be >= 1"
        )
    _positive("transfer.finetune_learning_rate", t.finetune_learning_rate)
    n_blocks = len(cfg.model.hidden_sizes())
    if first_unfrozen_block(t.trainable_from, n_blocks) is None and t.trainable_from != "none":
        _fail(
            "transfer.trainable_from",
            t.trainable_from,
            f"all, none, or a hidden block hidden_01..hidden_{n_blocks:02d} (it and the blocks above unfreeze)",
        )
    if t.source_run_id is not None and not t.source_run_id.strip():
        _fail("transfer.source_run_id", t.source_run_id, "a run id, or null to train model A")


def first_unfrozen_block(spec: str, n_blocks: int) -> int | None:
    """The lowest hidden block (1-based) that fine-tuning trains: 1 for `all` (input BN
    included), the block's number for `hidden_NN`, None for `none` or an unknown spec."""
    if spec == "all":
        return 1
    match = re.fullmatch(r"hidden_(\d+)", spec)
    if match and 1 <= int(match.group(1)) <= n_blocks:
        return int(match.group(1))
    return None


def validate(cfg: DictConfig) -> Config:
    """The composed config as typed objects, range-checked. Ignores Hydra's own node."""
    job_cfg = (
        OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    )
    typed = OmegaConf.to_object(job_cfg)
    if not isinstance(typed, Config):
        raise ConfigError("the root config must extend config_schema")
    return check(typed)
