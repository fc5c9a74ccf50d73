"""The options of a config group, each registered beside the code that builds it.

A group (init, activation, optimizer, ...) keeps one `Options` registry. Registering an
option names it, lists the group's fields that it uses and gives its builder:

    ACTIVATIONS = Options("activation", build=_keras_activation)

    @ACTIVATIONS.register("leaky_relu", uses={"negative_slope"})
    def leaky_relu(cfg, name):
        ...

The registry gives the schema its Enum of names (so Hydra refuses an unknown name at
compose time and lists the allowed ones) and the value checks their rule that an option
sets exactly the fields it uses. Adding an option is one YAML file in conf/<group>/ and
one registration here. Builders import TensorFlow/Keras inside their bodies: the
schemas that import these registries must stay cheap for config-only commands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class Option:
    name: str
    uses: frozenset[str]  # fields it needs: each must hold a value
    build: Callable[..., Any] | None
    may_use: frozenset[str] = frozenset()  # fields it reads when they hold one


class Options:
    """Registered options of one group, in registration order."""

    def __init__(self, group: str, build: Callable[..., Any] | None = None):
        self.group = group
        self._default_build = build
        self._options: dict[str, Option] = {}

    def register(
        self, name: str, *, uses: Iterable[str] = (), may_use: Iterable[str] = ()
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form: registers the function as the option's builder."""

        def decorate(build: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name, uses=uses, may_use=may_use, build=build)
            return build

        return decorate

    def add(
        self,
        name: str,
        *,
        uses: Iterable[str] = (),
        may_use: Iterable[str] = (),
        build: Callable[..., Any] | None = None,
    ) -> None:
        """An option built by the group's default builder (or `build`), which needs the
        fields `uses` and may read those of `may_use`."""
        if name in self._options:
            raise ValueError(f"{self.group}={name} is registered twice")
        self._options[name] = Option(name, frozenset(uses), build, frozenset(may_use))

    @property
    def names(self) -> list[str]:
        return list(self._options)

    def enum(self, class_name: str, module: str) -> type[Enum]:
        """The options as a str Enum, for the group's schema. `module` is where the Enum
        is assigned to `class_name`, so that its members pickle by reference: a sweep
        sends each job's config, enum values included, to other processes."""
        members = [(n, n) for n in self._options]
        return Enum(class_name, members, type=str, module=module)  # type: ignore[return-value]

    def uses(self, name: str) -> frozenset[str]:
        return self._options[name].uses

    def may_use(self, name: str) -> frozenset[str]:
        return self._options[name].may_use

    @property
    def option_fields(self) -> frozenset[str]:
        """Fields some option uses; the group's other fields are common to all options."""
        return frozenset().union(*(o.uses | o.may_use for o in self._options.values()))

    def users_of(self, field: str) -> list[str]:
        return [o.name for o in self._options.values() if field in o.uses | o.may_use]

    def build(self, name: str | Enum, *args: Any, **kwargs: Any) -> Any:
        """Calls the option's builder (or the group's default one, which reads the name
        from the group's config) with the config and whatever else the group needs."""
        key = name.value if isinstance(name, Enum) else name
        build = self._options[key].build or self._default_build
        if build is None:
            raise TypeError(f"{self.group}={key} has no builder")
        return build(*args, **kwargs)
