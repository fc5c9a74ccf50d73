"""Hydra's sweep syntax as Optuna distributions, as the upstream hydra-optuna-sweeper reads
it, on Optuna 4's distribution classes:

    choice(a, b, c)                  CategoricalDistribution([a, b, c])
    range(start, stop[, step])       IntDistribution (stop excluded, as Hydra's basic
                                     sweeper has it); FloatDistribution with a step when
                                     any bound is a float; a shuffled range is a choice
    interval(low, high)              FloatDistribution (integers: use range)
    tag(log, interval(low, high))    the same on a log scale
    value                            fixed for every trial
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


class SearchSpaceError(HydraException, ValueError):
    """A search space Optuna cannot sample: a config error, which the entry point says in
    one line (exit 2), as Hydra's own."""


def _choices(override: Override) -> list[Any]:
    return list(override.sweep_iterator(transformer=Transformer.encode))


def distribution(override: Override) -> BaseDistribution | str:
    """The override's distribution, or its value as a string when it is not a sweep."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    key = override.get_key_element()
    value = override.value()
    if override.is_choice_sweep():
        return CategoricalDistribution(_choices(override))
    if override.is_range_sweep():
        if value.shuffle:
            return CategoricalDistribution(_choices(override))
        values = list(override.sweep_iterator())
        if not values:
            raise SearchSpaceError(f"{key}: range({value.start}, {value.stop}) is empty")
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
        return IntDistribution(int(values[0]), int(values[-1]), step=int(value.step))
    if override.is_interval_sweep():  # Hydra reads interval bounds as floats
        return FloatDistribution(float(value.start), float(value.end), log="log" in value.tags)
    raise SearchSpaceError(f"{key}: {override.input_line} is not a sweep Optuna can sample")


def parse(arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """(search space, fixed values) of `key=sweep` strings."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        found = distribution(override)
        if isinstance(found, BaseDistribution):
            space[override.get_key_element()] = found
        else:
            fixed[override.get_key_element()] = found
    for key in fixed:
        space.pop(key, None)
    return space, fixed


def grid(space: dict[str, BaseDistribution]) -> dict[str, list[Any]]:
    """Every value of each parameter, for Optuna's GridSampler (discrete spaces only)."""
    found: dict[str, list[Any]] = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            found[name] = list(dist.choices)
        elif isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step and not dist.log:
            count = int(round((dist.high - dist.low) / dist.step)) + 1
            found[name] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise SearchSpaceError(
                f"{name}: the grid sampler needs choice(...) or range(...), not an interval"
            )
    return found


def suggest(trial, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The trial's values, drawn through Optuna's public suggest API."""
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return dict(trial.params)
