"""Figures as PNG files: the one way every figure of the lab is saved, and a run's
learning curves.

Built on matplotlib `Figure` objects, never pyplot: nothing is kept in a global figure
registry (so nothing needs closing), and no screen or backend choice is involved.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100


def save_figure(fig: Figure, path: Path, *, tight: bool = False) -> Path:
    """`tight` widens the canvas to keep a legend placed outside the axes."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if tight else None)
    return path


def learning_curves(history: dict[str, list[float]], path: Path, title: str = "") -> Path:
    """Loss and accuracy, training and validation, over epochs (step = epoch index)."""
    # Fixed margins: computing them (layout="tight") draws the figure twice.
    fig = Figure(figsize=(10, 4))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.86 if title else 0.95)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for key, style in ((metric, "-o"), (f"val_{metric}", "--s")):
            values = history.get(key, [])
            if values:
                ax.plot(range(len(values)), values, style, markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def rate_per_step(rates, path: Path) -> Path:
    """The learning rate at every training step (a schedule's shape over the run)."""
    fig = Figure(figsize=(6, 3.5))
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.15, top=0.95)
    ax = fig.subplots()
    ax.plot(range(len(rates)), rates, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
