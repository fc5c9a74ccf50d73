"""The report's figures, written as PNG files.

Built on matplotlib `Figure` objects rather than pyplot, so nothing is kept in a global
figure registry between reports. Readability at scale: one colour per value of the
factor that changed val_accuracy most (a qualitative map up to 20 values, an ordered
one for numbers or more values), one line style per value of the next, legends outside
the axes, and a legend by factor value instead of one entry per run beyond 20 runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from experiments.figures import save_figure
from experiments.report.compare import Factor, Matrix, by_effect, run_label
from experiments.report.data import PROFILE_STATS, RunSummary
from experiments.report.groups import Group, mean_curve

LINE_STYLES = (
    "-",
    "--",
    ":",
    "-.",
    (0, (5, 1, 1, 1, 1, 1)),
    (0, (8, 2)),
    (0, (1, 3)),
    (0, (3, 3, 1, 3)),
)
MAX_LEGEND_RUNS = 20
LEGEND_ROWS = 28


@dataclass
class Style:
    color: tuple
    linestyle: str
    label: str


def _palette(count: int, ordered: bool) -> list[tuple]:
    if not ordered and count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if not ordered and count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    cmap = colormaps["viridis" if ordered else "turbo"]
    return [cmap(x) for x in np.linspace(0.05, 0.95, count)]


class RunStyles:
    """Colour by the factor whose values changed val_accuracy most, line style by the
    next; every run its own colour when nothing varies."""

    def __init__(self, runs: list[RunSummary], factors: list[Factor]):
        self.runs = runs
        self.factors = factors = by_effect(runs, factors)
        self.colour_factor = factors[0] if factors else None
        self.style_factor = factors[1] if len(factors) > 1 else None
        if self.colour_factor:
            values = self.colour_factor.values
            colours = _palette(len(values), ordered=self.colour_factor.numeric or len(values) > 20)
            self.colour_of = dict(zip(values, colours, strict=True))
        else:
            colours = _palette(len(runs), ordered=len(runs) > 20)
            self.colour_of = {run.run_id: c for run, c in zip(runs, colours, strict=True)}
        self.linestyle_of = (
            {v: LINE_STYLES[i % len(LINE_STYLES)] for i, v in enumerate(self.style_factor.values)}
            if self.style_factor
            else {}
        )

    def describe(self) -> str:
        if not self.colour_factor:
            return "One colour per run."
        words = f"Colour: {self.colour_factor.key}"
        if self.style_factor:
            words += f"; line style: {self.style_factor.key}"
        return words + " (the factors that changed val_accuracy most, in that order)."

    def of(self, run: RunSummary) -> Style:
        colour_key = self.colour_factor.value(run) if self.colour_factor else run.run_id
        linestyle = (
            self.linestyle_of.get(self.style_factor.value(run), "-") if self.style_factor else "-"
        )
        # Without factors a label is a run name, which two runs may share.
        label = run_label(run, self.factors) if self.factors else f"{run.name} [{run.run_id[:6]}]"
        if run.failed:
            label += f" ({run.status})"
        return Style(self.colour_of[colour_key], linestyle, label)

    def legend(self, fig: Figure, drawn: dict[str, Line2D]) -> None:
        """Right of the axes: one entry per run up to 20 runs, else one per factor value."""
        if len(drawn) <= MAX_LEGEND_RUNS or not self.colour_factor:
            handles, labels = list(drawn.values()), list(drawn)
            title = None
        else:
            handles, labels = [], []
            for value, colour in self.colour_of.items():
                handles.append(Line2D([], [], color=colour, lw=2))
                labels.append(self.colour_factor.label(value))
            for value, style in self.linestyle_of.items():
                handles.append(Line2D([], [], color="black", linestyle=style))
                labels.append(self.style_factor.label(value))
            if any(run.failed for run in self.runs):
                handles.append(Line2D([], [], color="grey", marker="x", linestyle="none"))
                labels.append("did not finish")
            title = " / ".join(f.key for f in self.factors[:2]) + f" ({len(drawn)} runs)"
        if not handles:
            return
        fig.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize="small" if len(labels) > 10 else "medium",
            ncol=math.ceil(len(labels) / LEGEND_ROWS),
            title=title,
            frameon=False,
        )


def _finite(points: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    steps = [s for s, _ in points]
    values = [v if math.isfinite(v) else math.nan for _, v in points]
    return steps, values


def learning_curves(runs: list[RunSummary], styles: RunStyles, path: Path) -> Path:
    """val_accuracy and training loss over epochs, one line per run."""
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax_acc, ax_loss = fig.subplots(1, 2)
    drawn: dict[str, Line2D] = {}
    losses: list[float] = []
    for run in runs:
        style = styles.of(run)
        for ax, key in ((ax_acc, "val_accuracy"), (ax_loss, "loss")):
            steps, values = _finite(run.curves.get(key, []))
            if not steps:
                continue
            (line,) = ax.plot(
                steps,
                values,
                color=style.color,
                linestyle=style.linestyle,
                marker="o" if len(steps) <= 20 and len(runs) <= MAX_LEGEND_RUNS else None,
                markersize=3,
                alpha=0.55 if run.failed else 0.9,
                lw=1.4,
            )
            if run.failed:
                finite = [(s, v) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
                if finite:
                    ax.plot(*finite[-1], marker="x", color=style.color, markersize=9, mew=2)
            drawn.setdefault(style.label, line)
            if key == "loss":
                losses.extend(v for v in values if math.isfinite(v) and v > 0)
    ax_acc.set(title="validation accuracy", xlabel="epoch", ylabel="val_accuracy")
    ax_loss.set(title="training loss", xlabel="epoch", ylabel="loss")
    # An exploding run's loss spans decades; a log axis keeps the others readable.
    if losses and max(losses) / min(losses) > 100:
        ax_loss.set_yscale("log")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    styles.legend(fig, drawn)
    return save_figure(fig, path, tight=True)


def group_curves(groups: list[Group], styles: RunStyles, path: Path) -> Path:
    """val_accuracy over epochs, one line per configuration: the mean over its seeds and
    the 95% interval of the mean as a band."""
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    drawn: dict[str, Line2D] = {}
    for group in groups:
        steps, mean, low, high = mean_curve(group)
        if not len(steps):
            continue
        style = styles.of(group.runs[0])
        (line,) = ax.plot(
            steps, mean, color=style.color, linestyle=style.linestyle, lw=1.6,
            marker="o" if len(steps) <= 20 and len(groups) <= MAX_LEGEND_RUNS else None,
            markersize=3,
        )  # fmt: skip
        ax.fill_between(steps, low, high, color=style.color, alpha=0.18, lw=0)
        drawn.setdefault(f"{group.label} (n={len(group.runs)})", line)
    ax.set(title="validation accuracy: mean over seeds, 95% CI band", xlabel="epoch")
    ax.set_ylabel("val_accuracy")
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    styles.legend(fig, drawn)
    return save_figure(fig, path, tight=True)


STAT_TITLES = {
    "grad/signal_std": "gradient signal std (dL/d pre-activation)",
    "act/std": "activation std",
}


def depth_profiles(runs: list[RunSummary], styles: RunStyles, path: Path) -> Path:
    """Each stat over depth at initialization and at the last probe step, log scale:
    a line that falls towards the input is a vanishing gradient, one that rises, exploding."""
    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(len(PROFILE_STATS), 2, sharey="row", squeeze=False)
    drawn: dict[str, Line2D] = {}
    deepest = 1
    for run in runs:
        diagnostics = run.diagnostics
        if diagnostics is None:
            continue
        style = styles.of(run)
        layers = diagnostics.layers
        deepest = max(deepest, len(layers))
        for row, stat in enumerate(PROFILE_STATS):
            for col, which in enumerate(("init", "last")):
                profile = diagnostics.profile(stat, which)
                if profile is None or len(profile) != len(layers):
                    continue
                values = np.where(np.isfinite(profile) & (profile > 0), profile, np.nan)
                if np.isnan(values).all():
                    continue
                (line,) = axes[row, col].plot(
                    layers,
                    values,
                    color=style.color,
                    linestyle=style.linestyle,
                    marker="o" if len(layers) <= 12 else None,
                    markersize=3,
                    lw=1.2,
                    alpha=0.55 if run.failed else 0.9,
                )
                drawn.setdefault(style.label, line)
    for row, stat in enumerate(PROFILE_STATS):
        for col, words in enumerate(("at initialization", "at the last probe step")):
            ax = axes[row, col]
            ax.set_title(f"{STAT_TITLES[stat]}, {words}", fontsize="medium")
            ax.set_xlabel("hidden block (1 = next to the input)")
            ax.grid(alpha=0.3, which="both")
            ax.xaxis.get_major_locator().set_params(integer=True)
            if ax.has_data():
                ax.set_yscale("log")
        axes[row, 0].set_ylabel(stat)
    if deepest > 1:
        for ax in axes.flat:
            ax.set_xlim(1, deepest)
    styles.legend(fig, drawn)
    return save_figure(fig, path, tight=True)


def _cell_text(matrix: Matrix, i: int, j: int) -> str:
    value = matrix.values[i, j]
    if matrix.runs[i, j] == 0:
        return "no run"
    if not math.isfinite(value):
        return "failed" if matrix.failed[i, j] else "n/a"
    text = f"{value:.3g}" if matrix.log_scale else f"{value:.3f}"
    if matrix.runs[i, j] > 1:
        text += f"\nn={matrix.runs[i, j]}"
    if matrix.failed[i, j]:
        text += f"\n{matrix.failed[i, j]} failed"
    return text


def _draw_matrix(fig: Figure, ax, matrix: Matrix) -> None:
    finite = matrix.values[np.isfinite(matrix.values)]
    if matrix.log_scale:
        # Ratio 1 (same gradient size at both ends) in white; below blue, above red.
        logs = np.log10(finite) if finite.size else np.array([0.0])
        reach = max(float(np.abs(logs).max()), 0.5)
        norm = LogNorm(vmin=10**-reach, vmax=10**reach)
        cmap = colormaps["RdBu_r"]
    else:
        norm = Normalize(float(finite.min()), float(finite.max())) if finite.size else None
        cmap = colormaps["viridis"]
    shown = np.ma.masked_invalid(matrix.values)
    image = ax.imshow(shown, cmap=cmap, norm=norm, aspect="auto")
    ax.set_facecolor("#dddddd")
    rows, cols = matrix.shape
    font = "small" if rows * cols <= 36 else "x-small"
    for i in range(rows):
        for j in range(cols):
            value = matrix.values[i, j]
            dark = math.isfinite(value) and _is_dark(cmap(norm(value) if norm else value))
            ax.text(
                j,
                i,
                _cell_text(matrix, i, j),
                ha="center",
                va="center",
                fontsize=font,
                color="white" if dark else "black",
            )
    ax.set_xticks(
        range(cols),
        [matrix.cols.label(v) for v in matrix.cols.values],
        rotation=30 if cols > 3 else 0,
        ha="right" if cols > 3 else "center",
    )
    ax.set_yticks(range(rows), [matrix.rows.label(v) for v in matrix.rows.values])
    ax.set_xlabel(matrix.cols.key)
    ax.set_ylabel(matrix.rows.key)
    title = matrix.title
    if matrix.averaged_over:
        title += "\n(mean over " + ", ".join(f.key for f in matrix.averaged_over) + ")"
    ax.set_title(title, fontsize="medium")
    fig.colorbar(image, ax=ax, shrink=0.8)


def _is_dark(rgba) -> bool:
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


def matrix_figure(matrices: list[Matrix], path: Path) -> Path:
    """One heat map per matrix, side by side, each cell annotated with its number."""
    rows, cols = matrices[0].shape
    width = (2.5 + 1.0 * cols) * len(matrices)
    fig = Figure(figsize=(min(width, 24), 1.8 + 0.55 * rows), layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    for ax, matrix in zip(axes, matrices, strict=True):
        _draw_matrix(fig, ax, matrix)
    return save_figure(fig, path, tight=True)
