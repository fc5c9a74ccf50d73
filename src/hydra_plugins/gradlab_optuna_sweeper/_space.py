"""Hydra's sweep syntax as Optuna distributions, as the upstream hydra-optuna-sweeper reads
it, on Optuna 4's distribution classes:

    choice(a, b, c)                  CategoricalDistribution([a, b, c])
    range(start, stop[, step])       IntDistribution (stop excluded, as Hydra's basic
                                     sweeper has it); FloatDistribution with a step when
                                     any bound is a float; a shuffled range is a choice
    interval(low, high)              FloatDistribution (Hydra reads its bounds as floats)
    int(interval(low, high))         IntDistribution, both bounds included
    tag(log, interval(low, high))    either of the two on a log scale
    value                            fixed for every trial

and, as upstream, `hydra.sweeper.custom_search_space`: a function `(cfg, trial)` called
after the space's own values are drawn, for parameters that depend on them (it calls
`trial.suggest_*`; a mapping it returns is fixed for that trial).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    if override.is_interval_sweep():
        log = "log" in value.tags
        # `int(...)` casts the bounds, and only then are they ints: a plain interval's are
        # floats, so an integer key needs the cast (as upstream reads it).
        if isinstance(value.start, int) and isinstance(value.end, int):
            return _checked(key, IntDistribution, int(value.start), int(value.end), log=log)
        return _checked(key, FloatDistribution, float(value.start), float(value.end), log=log)
    raise SearchSpaceError(f"{key}: {override.input_line} is not a sweep Optuna can sample")


def _checked(key: str, kind: type[BaseDistribution], low, high, log: bool) -> BaseDistribution:
    try:
        return kind(low, high, log=log)
    except ValueError as e:  # Optuna's own words: "low must be larger than 0 for log"...
        raise SearchSpaceError(f"{key}: {e}") from None


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


Extender = Callable[[Any, Any], "Mapping[str, Any] | None"]


def suggest(
    trial,
    space: dict[str, BaseDistribution],
    fixed: Mapping[str, Any] | None = None,
    extend: Extender | None = None,
    cfg: Any = None,
) -> dict[str, Any]:
    """The trial's values, drawn through Optuna's public suggest API, then those of the
    custom search space `extend(cfg, trial)` and what it fixes; `fixed` last."""
    fixed = dict(fixed or {})
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    extra: dict[str, Any] = {}
    if extend is not None:
        extra = dict(extend(cfg, trial) or {})
        for name, value in extra.items():
            # Kept on the trial: a retry (same params) and the results file see it too.
            trial.set_user_attr(name, value)
    both = sorted((trial.params.keys() | extra.keys()) & fixed.keys())
    clash = sorted(trial.params.keys() & extra.keys()) or both
    if clash:
        raise SearchSpaceError(
            f"{', '.join(clash)}: set both by the custom search space and by "
            "hydra.sweeper.params or the command line: keep one"
        )
    return {**trial.params, **extra, **fixed}
