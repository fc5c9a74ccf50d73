"""Figures of the probe's numbers: where in depth, and when in training, the gradient
vanishes or explodes. Layers run along one axis, so 100-layer nets stay readable:
no per-layer legend entries or labels, integer ticks picked by matplotlib.

Every run of a sweep draws these, so their margins are fixed rather than computed
(`tight_layout` draws the figure once more to measure it: about half of its cost)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator

from experiments.figures import save_figure

HEATMAP = "gradient_signal_heatmap.png"
PROFILES = "depth_profiles.png"
FRACTIONS = "dead_saturated_fraction.png"


def _matrix(rows: list[list[float]]) -> np.ndarray:
    """probe step x layer, non-finite values masked."""
    return np.ma.masked_invalid(np.array(rows, dtype=np.float64))


def _log10(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.ma.masked_invalid(np.log10(np.ma.filled(values, np.nan)))


def signal_heatmap(record, path: Path) -> Path:
    """log10 std(dL/ds_l): layer (input at the bottom) x probe step (epochs completed)."""
    logs = _log10(_matrix(record.stats["grad/signal_std"])).T
    layers, steps = logs.shape
    fig = Figure(figsize=(max(6.5, min(12.0, 4 + 0.4 * steps)), 5 if layers < 40 else 7))
    ax = fig.subplots()
    cmap = colormaps["viridis"].with_extremes(bad="lightgrey")  # non-finite or zero
    image = ax.imshow(
        logs,
        aspect="auto",
        origin="lower",
        interpolation="nearest",
        cmap=cmap,
        extent=(-0.5, steps - 0.5, 0.5, layers + 0.5),
    )
    ax.set_xticks(range(steps))
    ax.set_xticklabels([str(e) for e in record.epochs])
    if steps > 20:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=12))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(layers, 12)))
    ax.set_xlabel("epochs completed (0 = at initialization)")
    ax.set_ylabel("hidden layer (1 = nearest the input)")
    ax.set_title("back-propagated signal: log10 std(dL/ds)")
    fig.colorbar(image, ax=ax, label="log10 std(dL/ds)")
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.11, top=0.92)
    return save_figure(fig, path)


def depth_profiles(record, path: Path) -> Path:
    """||dL/dW_l||, std(dL/ds_l) and the activation std over depth, at the first and
    the last probe step."""
    layers = np.arange(1, record.num_layers + 1)
    marker = "o" if record.num_layers <= 30 else None
    panels = (
        ("grad/kernel_norm", "||dL/dW|| (pre-clip)"),
        ("grad/signal_std", "std(dL/ds)"),
        ("act/std", "activation std"),
    )
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 3)
    chosen = [0] if len(record.epochs) == 1 else [0, len(record.epochs) - 1]
    for ax, (name, label) in zip(axes, panels, strict=True):
        values = _matrix(record.stats[name])
        for row, style in zip(chosen, ("-", "--")[: len(chosen)], strict=True):
            positive = np.ma.masked_less_equal(values[row], 0.0)
            ax.plot(
                layers,
                positive,
                style,
                marker=marker,
                markersize=3,
                label=f"epoch {record.epochs[row]}",
            )
        if values.count() and (values > 0).any():
            ax.set_yscale("log")
            # Plain-text tick labels: the default ones are typeset (mathtext), which was
            # most of the figure's cost, drawn again for every run of a sweep.
            ax.yaxis.set_major_formatter(LogFormatter())
            ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
        ax.set_xlabel("hidden layer")
        ax.set_title(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{record.activation}: depth profiles on {record.probe_size} probe images")
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.13, top=0.84, wspace=0.25)
    return save_figure(fig, path)


def unit_fractions(record, path: Path) -> Path | None:
    """Dead (ReLU-like) or saturated (sigmoid/tanh) fraction per layer, first and last probe."""
    name = next((n for n in ("act/dead_frac", "act/saturated_frac") if n in record.stats), None)
    if name is None:
        return None
    values = _matrix(record.stats[name])
    layers = np.arange(1, record.num_layers + 1)
    chosen = [0] if len(record.epochs) == 1 else [0, len(record.epochs) - 1]
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    for row, style in zip(chosen, ("-", "--")[: len(chosen)], strict=True):
        ax.plot(
            layers, values[row], style, drawstyle="steps-mid", label=f"epoch {record.epochs[row]}"
        )
    what = (
        "dead units (s <= 0 on every probe image)"
        if name.endswith("dead_frac")
        else ("saturated activations")
    )
    ax.set_title(f"{record.activation}: fraction of {what}")
    ax.set_xlabel("hidden layer")
    ax.set_ylabel("fraction")
    ax.set_ylim(-0.02, 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.12, top=0.91)
    return save_figure(fig, path)


def diagnostics_plots(record, folder: Path) -> list[Path]:
    written = [signal_heatmap(record, folder / HEATMAP), depth_profiles(record, folder / PROFILES)]
    fractions = unit_fractions(record, folder / FRACTIONS)
    return written + ([fractions] if fractions else [])
