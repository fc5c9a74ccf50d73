"""Optuna's own figures of a study (its matplotlib backend), as PNG files."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from ._storage import quiet

log = logging.getLogger(__name__)

FIGURES = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "parallel_coordinate": "plot_parallel_coordinate",
    "intermediate_values": "plot_intermediate_values",
}
# Of a study of several objectives: the front, then each objective's history and
# importances (Optuna draws those for one target at a time).
PER_OBJECTIVE = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
}


def write_figures(
    study: optuna.Study, folder: Path, objectives: Sequence[str] = ("val_accuracy",)
) -> list[Path]:
    """Each figure the study has data for (importances need two finished trials that
    differ); one that cannot be drawn is named in the log and left out."""
    from optuna.visualization import matplotlib as figures

    folder.mkdir(parents=True, exist_ok=True)
    drawn: list[tuple[str, Callable[[], Any]]] = []
    if len(objectives) == 1:
        # Trials over several seeds report nothing per epoch (their pruning is off).
        reported = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
        drawn = [
            (name, _call(figures, function, study))
            for name, function in FIGURES.items()
            if reported or name != "intermediate_values"
        ]
    else:
        drawn.append(
            ("pareto_front", _call(figures, "plot_pareto_front", study, target_names=objectives))
        )
        for k, objective in enumerate(objectives):
            for name, function in PER_OBJECTIVE.items():
                drawn.append(
                    (
                        f"{name}_{objective}",
                        _call(
                            figures,
                            function,
                            study,
                            target=lambda t, k=k: t.values[k],
                            target_name=objective,
                        ),
                    )
                )
    return [path for name, draw in drawn if (path := _save(draw, folder / f"{name}.png", name))]


def _call(module, function: str, *args, **kwargs) -> Callable[[], Any]:
    return lambda: getattr(module, function)(*args, **kwargs)


def _save(draw: Callable[[], Any], path: Path, name: str) -> Path | None:
    import matplotlib.pyplot as plt  # Optuna's matplotlib backend draws with pyplot

    try:
        with quiet(UserWarning):  # experimental plots, and their remarks on the values
            axes = draw()
        figure = axes.ravel()[0].figure if hasattr(axes, "ravel") else axes.figure
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        return path
    except Exception as e:  # too few trials for this figure: the others still come
        log.info("no %s figure: %s", name, e)
        return None
