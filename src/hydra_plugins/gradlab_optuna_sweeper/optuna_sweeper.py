"""The Hydra sweeper plugin (found by Hydra's scan of the `hydra_plugins` namespace). Its
work is in `_impl`, imported only when a search starts, so that every other command
pays nothing for Optuna."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaStudySweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        # The settings are checked in setup: Hydra wraps whatever this constructor raises
        # in "Error in call to target ...", and a bad setting should read as itself.
        self.settings = settings

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from ._impl import StudySweep

        self.sweeper = StudySweep(**self.settings)
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)
