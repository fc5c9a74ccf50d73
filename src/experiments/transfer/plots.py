"""The study run's figure: baseline B and B on A learning curves on shared axes."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from experiments.figures import save_figure


def compare_curves(
    baseline: dict[str, list[float]],
    transfer: dict[str, list[float]],
    unfreeze_step: int,
    path: Path,
) -> Path:
    """Loss and accuracy over epochs, training (solid) and validation (dashed), with a
    line where B on A's reused layers unfreeze."""
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for history, label, color in (
            (baseline, "baseline B", "tab:gray"),
            (transfer, "B on A", "tab:blue"),
        ):
            for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                values = history.get(key, [])
                if values:
                    ax.plot(range(len(values)), values, style, color=color, label=f"{label} {key}")
        if 0 < unfreeze_step < len(transfer.get(metric, [])):
            ax.axvline(unfreeze_step - 0.5, color="tab:red", linestyle=":", label="unfreeze")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Task B: from scratch vs. on model A's layers")
    fig.tight_layout()
    return save_figure(fig, path)
