"""Optuna's own figures of a study (its matplotlib backend), as PNG files."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna

from ._storage import quiet

log = logging.getLogger(__name__)

FIGURES = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "parallel_coordinate": "plot_parallel_coordinate",
    "intermediate_values": "plot_intermediate_values",
}


def write_figures(study: optuna.Study, folder: Path) -> list[Path]:
    """Each figure the study has data for (importances need two finished trials that
    differ); one that cannot be drawn is named in the log and left out."""
    import matplotlib.pyplot as plt  # Optuna's matplotlib backend draws with pyplot
    from optuna.visualization import matplotlib as figures

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, function in FIGURES.items():
        try:
            with quiet(UserWarning):  # experimental plots, and their remarks on the values
                axes = getattr(figures, function)(study)
            figure = axes.ravel()[0].figure if hasattr(axes, "ravel") else axes.figure
            figure.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
            plt.close(figure)
            written.append(folder / f"{name}.png")
        except Exception as e:  # too few trials for this figure: the others still come
            log.info("no %s figure: %s", name, e)
    return written
