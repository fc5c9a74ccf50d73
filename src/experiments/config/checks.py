"""Value checks OmegaConf cannot express, run first in every job, before TensorFlow or
MLflow are imported; each failure is a `ConfigError` naming the key.

An option sets exactly the fields it uses (its registration says which): a field set
for an option that ignores it is refused (`activation=relu activation.alpha=2` would
otherwise be silently dropped), and a field it needs may not be null.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import re
import reprlib
import typing
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from enum import Enum
from itertools import pairwise
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.config.schema import GROUP_OPTIONS, Config
from experiments.core.flatten import flatten
from experiments.core.options import Options
from experiments.data import OFFICIAL_SIZES, DataName
from experiments.models.settings import CONV_FIELDS, ModelConfig
from experiments.training.schedules import ScheduleConfig
from experiments.transfer.options import TransferName, first_unfrozen_block


class ConfigError(ValueError):
    """A config value that composes but cannot be used; the message names the key."""


MAX_SEED = 2**32 - 1
# MLflow's MAX_EXPERIMENT_NAME_LENGTH (mlflow.utils.validation), copied: importing it
# would load MLflow (about 1.3 s) into every config-only command. A test keeps them equal.
MAX_EXPERIMENT_NAME = 500


def schema_keys(schema: type = Config, prefix: str = "") -> set[str]:
    """Every dotted key the schema defines (a list is one key)."""
    keys: set[str] = set()
    hints = typing.get_type_hints(schema)
    for f in fields(schema):
        dotted = f"{prefix}{f.name}"
        kind = hints[f.name]
        if is_dataclass(kind):
            keys |= schema_keys(kind, dotted + ".")
        else:
            keys.add(dotted)
    return keys


def _check_known_keys(cfg: DictConfig) -> None:
    """Keys the schema does not know (`+training.epoch=5`, `+foo=1`): Hydra's `+`
    appends them, and they would be ignored in silence."""
    known = schema_keys()
    for key, value in flatten(cfg).items():
        if key in known:
            continue
        nearest = _closest(key, known, n=1)
        hint = f"did you mean {nearest[0]}?" if nearest else "`--cfg job` lists the keys"
        _fail(key, value, f"no such key ({hint})")


def _closest(word: str, candidates: Iterable[str], n: int) -> list[str]:
    return difflib.get_close_matches(word, sorted(candidates), n=n, cutoff=0.6)


def unknown_option(missing_config: str, options: Sequence[str] | None) -> str | None:
    """The line for a group option that has no file (Hydra's MissingConfigException:
    `missing_config` is `<group>/<option>`, `options` the group's files), naming the
    closest options; None where Hydra did not say which group it searched."""
    group, _, option = missing_config.rpartition("/")
    if not group or not options:
        return None
    nearest = _closest(option, options, n=3)
    hint = (
        f"did you mean {' or '.join(nearest)}?"
        if nearest
        else f"{group} is one of {', '.join(sorted(options))}"
    )
    return f"{group}={option} is not allowed: no such option ({hint})"


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{key}={_show(value)} is not allowed: {allowed}")


# A long string (a 501-character experiment name) is shown by its ends: the line stays one.
_SHORT = reprlib.Repr()
_SHORT.maxstring = 60


def _show(value: Any) -> str:
    if isinstance(value, Enum):
        return value.value
    return _SHORT.repr(value) if isinstance(value, str) else repr(value)


def _check_option_fields(group: str, options: Options, node: Any) -> None:
    option = node.name.value
    uses, may_use = options.uses(option), options.may_use(option)
    for key in (f.name for f in fields(node) if f.name in options.option_fields):
        value = getattr(node, key)
        if key in uses and value is None:
            _fail(f"{group}.{key}", value, f"{group}={option} needs a value")
        if key not in uses | may_use and value is not None:
            users = "|".join(options.users_of(key))
            _fail(f"{group}.{key}", value, f"only {group}={users} uses it")


def _positive(key: str, value: float | int | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        _fail(key, value, "must be > 0")


def _at_least(key: str, value: float | None, low: int) -> None:
    if value is not None and not (math.isfinite(value) and value >= low):
        _fail(key, value, f"must be >= {low}")


def _in_unit_interval(key: str, value: float | None, *, closed_low: bool) -> None:
    if value is None:
        return
    ok = (0 <= value < 1) if closed_low else (0 < value < 1)
    if not ok:
        _fail(key, value, "must be in [0, 1)" if closed_low else "must be in (0, 1)")


def check(cfg: Config) -> Config:
    """Range checks OmegaConf cannot express; raises ConfigError naming the first bad key."""
    for group, options in GROUP_OPTIONS.items():
        _check_option_fields(group, options, getattr(cfg, group))
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
    _at_least("optimizer.initial_accumulator_value", opt.initial_accumulator_value, 0)
    _at_least("optimizer.weight_decay", opt.weight_decay, 0)
    _check_schedule(cfg.schedule)

    _check_model(cfg.model)
    _check_groups(cfg)

    data = cfg.data
    _at_least("data.validation_size", data.validation_size, 1)
    _at_least("data.train_size", data.train_size, 1)
    _at_least("data.test_size", data.test_size, 1)
    _at_least("data.image_size", data.image_size, 1)
    _at_least("data.num_classes", data.num_classes, 2)
    if data.noise is not None and not data.noise >= 0:
        _fail("data.noise", data.noise, "must be >= 0")
    if data.name.value in OFFICIAL_SIZES:
        n_train, n_test = OFFICIAL_SIZES[data.name.value]
        if (data.train_size or 0) > n_train:
            _fail("data.train_size", data.train_size, f"must be <= {n_train} (the training set)")
        if (data.test_size or 0) > n_test:
            _fail("data.test_size", data.test_size, f"must be <= {n_test} (the test set)")
        if data.validation_size >= n_train:
            _fail(
                "data.validation_size",
                data.validation_size,
                f"must be < {n_train} (the training set)",
            )
    if data.train_size is not None and data.validation_size >= data.train_size:
        _fail("data.validation_size", data.validation_size, "must be < data.train_size")

    train = cfg.training
    if not 0 <= train.seed <= MAX_SEED:
        _fail("training.seed", train.seed, f"must be in 0..{MAX_SEED} (Keras' seed range)")
    _at_least("training.epochs", train.epochs, 1)
    _at_least("training.batch_size", train.batch_size, 1)
    _at_least("training.steps_per_execution", train.steps_per_execution, 1)
    _at_least("training.eval_batch_size", train.eval_batch_size, 1)
    _at_least("training.steps_per_epoch", train.steps_per_epoch, 1)
    if train.verbose not in (None, 0, 1, 2):
        _fail("training.verbose", train.verbose, "one of 0, 1, 2, or null (a bar on a terminal)")

    _at_least("diagnostics.every_n_epochs", cfg.diagnostics.every_n_epochs, 1)
    _at_least("diagnostics.probe_size", cfg.diagnostics.probe_size, 1)

    _positive("tracking.system_metrics_interval", cfg.tracking.system_metrics_interval)
    if cfg.tracking.system_metrics and importlib.util.find_spec("psutil") is None:
        _fail(
            "tracking.system_metrics",
            True,
            "needs psutil: pip install -e '.[system-metrics]' (make setup installs it)",
        )
    check_experiment_name(cfg.tracking.experiment)
    return cfg


def _check_model(model: ModelConfig) -> None:
    if model.is_conv:
        _check_conv(model)
    else:
        for key in CONV_FIELDS:
            value = getattr(model, key)
            if value is not None:
                _fail(f"model.{key}", value, "only a conv net (model=cnn, model.kind=conv) uses it")
        if not model.hidden and model.repeat == 0:
            _fail(
                "model.hidden",
                list(model.hidden),
                "at least one hidden layer (or model.repeat >= 1)",
            )
    for i, width in enumerate(model.hidden):
        if width < 1:
            _fail(f"model.hidden[{i}]", width, "layer sizes must be >= 1")
    _at_least("model.repeat", model.repeat, 0)
    _at_least("model.repeat_width", model.repeat_width, 1)
    _at_least("model.residual_every", model.residual_every, 1)
    _positive("model.residual_scale", model.residual_scale)


def _check_conv(model: ModelConfig) -> None:
    for key in ("filters", "blocks", "downsample"):
        if getattr(model, key) is None:
            _fail(f"model.{key}", None, "a conv net (model.kind=conv) needs a value")
    filters, blocks = list(model.filters), list(model.blocks)
    if not filters:
        _fail("model.filters", filters, "one or more stages (channels of each)")
    if len(blocks) != len(filters):
        _fail("model.blocks", blocks, f"one count per stage of model.filters ({len(filters)})")
    for key, values in (("filters", filters), ("blocks", blocks)):
        for i, value in enumerate(values):
            _at_least(f"model.{key}[{i}]", value, 1)
    _at_least("model.stem", model.stem, 0)
    if model.residual and not model.stem:
        _fail(
            "model.stem",
            model.stem,
            "model.residual needs a stem >= 1 (the first conv's channels, outside the skips)",
        )


def _widths(model: ModelConfig) -> list[tuple[str, int]]:
    """(key, width) of every layer a normalization layer follows."""
    if not model.is_conv:
        return [("model.hidden", w) for w in model.hidden_sizes()]
    stem = [("model.stem", model.stem)] if model.stem else []
    return (
        stem
        + [("model.filters", f) for f in model.filters]
        + [("model.hidden", w) for w in model.hidden_sizes()]
    )


def _check_groups(cfg: Config) -> None:
    """GroupNorm splits each layer's channels (units) into equal groups."""
    groups = cfg.normalization.groups
    if groups is None:
        return
    _at_least("normalization.groups", groups, 1)
    for key, width in _widths(cfg.model):
        if width % groups:
            _fail(
                "normalization.groups",
                groups,
                f"must divide every layer's width ({key} has {width} channels/units)",
            )


def check_experiment_name(name: str) -> None:
    """`tracking.experiment`: also checked by a sweep before it makes its parent run there."""
    if not name.strip():
        _fail("tracking.experiment", name, "a non-empty experiment name")
    if len(name) > MAX_EXPERIMENT_NAME:
        _fail(
            "tracking.experiment",
            name,
            f"at most {MAX_EXPERIMENT_NAME} characters (MLflow's limit), not {len(name)}",
        )


def _check_schedule(schedule: ScheduleConfig) -> None:
    _in_unit_interval("schedule.decay_rate", schedule.decay_rate, closed_low=False)
    _positive("schedule.decay_epochs", schedule.decay_epochs)
    if schedule.boundaries is not None:
        bounds = list(schedule.boundaries)
        if not bounds or bounds[0] < 1 or any(b <= a for a, b in pairwise(bounds)):
            _fail("schedule.boundaries", bounds, "increasing epochs, each >= 1")
        factors = list(schedule.factors or [])
        if len(factors) != len(bounds) + 1:
            _fail(
                "schedule.factors", factors, f"{len(bounds) + 1} factors, one more than boundaries"
            )
        for i, factor in enumerate(factors):
            _positive(f"schedule.factors[{i}]", factor)
    _in_unit_interval("schedule.factor", schedule.factor, closed_low=False)
    _at_least("schedule.patience", schedule.patience, 0)
    for key in ("div_factor", "final_div_factor"):
        _at_least(f"schedule.{key}", getattr(schedule, key), 1)
    _in_unit_interval("schedule.annealing_fraction", schedule.annealing_fraction, closed_low=True)
    _in_unit_interval("schedule.warmup_fraction", schedule.warmup_fraction, closed_low=True)
    if schedule.alpha is not None and not 0 <= schedule.alpha <= 1:
        _fail("schedule.alpha", schedule.alpha, "must be in [0, 1]")


def _check_transfer(cfg: Config) -> None:
    t = cfg.transfer
    if t.name is TransferName.none:
        return
    if cfg.model.residual and not cfg.model.is_conv:
        _fail(
            "model.residual",
            True,
            "transfer=study reuses a dense net as a chain of layers: use model.residual=false "
            "(or a conv net, model=cnn)",
        )
    classes = list(t.task_b_classes)
    # An npz's classes are known once it is read: the study checks its tasks then.
    n_classes = {DataName.synthetic: cfg.data.num_classes, DataName.npz: None}.get(
        cfg.data.name, 10
    )
    if n_classes is not None and n_classes - 2 < 2:
        _fail("data.num_classes", n_classes, "transfer=study needs >= 4 (task A keeps the rest)")
    in_range = all(0 <= c and (n_classes is None or c < n_classes) for c in classes)
    if len(classes) != 2 or len(set(classes)) != 2 or not in_range:
        where = ">= 0" if n_classes is None else f"in 0-{n_classes - 1}"
        _fail(
            "transfer.task_b_classes",
            classes,
            f"two distinct classes {where} (the second one is label 1)",
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
    n_blocks, stages = cfg.model.num_blocks(), cfg.model.stage_starts()
    if (
        first_unfrozen_block(t.trainable_from, n_blocks, stages) is None
        and t.trainable_from != "none"
    ):
        stage_words = f", a stage stage_{min(stages)}..stage_{max(stages)}" if stages else ""
        _fail(
            "transfer.trainable_from",
            t.trainable_from,
            f"all, none{stage_words} or a hidden block hidden_01..hidden_{n_blocks:02d} "
            "(it and the blocks above unfreeze)",
        )
    if t.source_run_id is not None and not t.source_run_id.strip():
        _fail("transfer.source_run_id", t.source_run_id, "a run id, or null to train model A")
    if t.source is not None and t.source_run_id is not None:
        _fail(
            "transfer.source", t.source, "set transfer.source or transfer.source_run_id, not both"
        )
    if t.source is not None and not t.source.strip():
        _fail(
            "transfer.source",
            t.source,
            "a run id or models:/<name>@<alias>, or null to train model A",
        )
    if t.register_as is not None:
        if t.source is not None or t.source_run_id is not None:
            _fail(
                "transfer.register_as",
                t.register_as,
                "registers a model A the study trains; it is loaded here",
            )
        if not t.register_as.strip() or "/" in t.register_as or "@" in t.register_as:
            _fail("transfer.register_as", t.register_as, "a model name without '/' or '@'")
        if (
            not t.register_alias
            or not re.fullmatch(r"[A-Za-z_][\w-]*", t.register_alias)
            or t.register_alias == "latest"
            or re.fullmatch(r"v\d+", t.register_alias)
        ):
            _fail(
                "transfer.register_alias",
                t.register_alias,
                "an alias: a letter or _, then letters, digits, _ or -; not latest or v<number>",
            )


def validate(cfg: DictConfig) -> Config:
    """The composed config as typed objects, range-checked. Ignores Hydra's own node."""
    job_cfg = (
        OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    )
    _check_known_keys(job_cfg)
    typed = OmegaConf.to_object(job_cfg)
    if not isinstance(typed, Config):
        raise ConfigError("the root config must extend config_schema")
    return check(typed)
