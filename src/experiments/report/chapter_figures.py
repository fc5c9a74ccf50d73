"""One figure per section of the chapter: small multiples of its presets' learning
curves and gradient profiles over depth, a handful of lines an axis instead of every
run of the sweep on one.

Each preset is one line (the mean over its seeds, with the 95% interval of the mean as
a band on the learning curve; the geometric mean over seeds on a profile); a transfer
study draws its three phases. The legend sits under the axes, so the figure keeps the
page's width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from experiments.figures import save_figure
from experiments.report.chapter import Preset
from experiments.report.groups import Group, mean_curve

SIGNAL = "grad/signal_std"
WIDTH_INCHES = 12.0
HEIGHT_INCHES = 3.3


def drawn_configurations(presets: list[Preset]) -> list[tuple[str, Group]]:
    """(label, configuration) of each line: a preset, or each phase of a transfer study."""
    found = []
    for preset in presets:
        if preset.phases:
            found += [(f"{preset.name} · {g.phase}", g) for g in preset.phases]
        else:
            found.append((preset.name, preset.main))
    return found


def profile(group: Group, which: str) -> np.ndarray | None:
    """The gradient signal std over depth at the first ("init") or last ("last") probe
    step, geometric mean over the seeds that recorded it with every value positive."""
    found = []
    for run in group.runs:
        if run.diagnostics is None:
            continue
        values = run.diagnostics.profile(SIGNAL, which)
        if values is None or len(values) != run.diagnostics.num_layers:
            continue
        values = np.asarray(values, dtype=float)
        if np.all(np.isfinite(values) & (values > 0)):
            found.append(np.log(values))
    if not found or len({len(v) for v in found}) != 1:
        return None
    return np.exp(np.mean(found, axis=0))


def section_figure(presets: list[Preset], path: Path) -> Path:
    """val_accuracy over epochs, and the gradient signal std over depth at
    initialization and at the last probe step, for the presets of one section."""
    fig = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), layout="constrained")
    ax_curve = fig.add_subplot(1, 3, 1)
    ax_init = fig.add_subplot(1, 3, 2)
    ax_last = fig.add_subplot(1, 3, 3, sharey=ax_init)
    lines = drawn_configurations(presets)
    colours = colormaps["tab10"] if len(lines) <= 10 else colormaps["tab20"]
    handles, labels = [], []
    deepest = 1
    epochs: list[int] = []
    for index, (label, group) in enumerate(lines):
        colour = colours(index % colours.N)
        steps, mean, low, high = mean_curve(group)
        handle = None
        epochs.extend(int(s) for s in steps)
        if len(steps):
            (handle,) = ax_curve.plot(
                steps, mean, color=colour, lw=1.6, marker="o" if len(steps) <= 20 else None,
                markersize=3,
            )  # fmt: skip
            if np.isfinite(low).any():
                ax_curve.fill_between(steps, low, high, color=colour, alpha=0.18, lw=0)
        for ax, which in ((ax_init, "init"), (ax_last, "last")):
            values = profile(group, which)
            if values is None:
                continue
            layers = np.arange(1, len(values) + 1)
            deepest = max(deepest, len(values))
            (line,) = ax.plot(
                layers, values, color=colour, lw=1.4, marker="o" if len(values) <= 12 else None,
                markersize=3,
            )  # fmt: skip
            handle = handle or line
        if handle is not None:
            handles.append(handle)
            labels.append(label)
    ax_curve.set(title="validation accuracy", xlabel="epoch", ylabel="val_accuracy")
    # Whole epochs only; a run of one or two epochs gets its ticks and room around them
    # (the locator falls back to fractions when its range holds a single integer).
    ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    if epochs and max(epochs) - min(epochs) < 3:
        ax_curve.set_xticks(range(min(epochs), max(epochs) + 1))
        ax_curve.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    for ax, words in ((ax_init, "at initialization"), (ax_last, "at the last probe step")):
        ax.set_title(f"gradient signal std {words}", fontsize="medium")
        ax.set_xlabel("hidden block (1 = next to the input)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.has_data():
            ax.set_yscale("log")
            ax.set_xlim(1, max(deepest, 2))
        else:
            ax.text(0.5, 0.5, "no diagnostics", ha="center", va="center", transform=ax.transAxes)
    for ax in (ax_curve, ax_init, ax_last):
        ax.grid(alpha=0.3, which="both")
    if handles:
        fig.legend(
            handles, labels, loc="outside lower center", ncol=min(len(labels), 4), frameon=False
        )
    return save_figure(fig, path, tight=True)
