"""Files each run leaves in its output folder and logs to MLflow."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from experiments.figures import learning_curves
from experiments.training.schedules import write_rate_plot


def write_config_artifacts(
    cfg: DictConfig, overrides: list[str], output_dir: Path
) -> list[tuple[Path, str | None]]:
    """The resolved config and the command line's overrides, as (file, artifact folder)."""
    config_path = output_dir / "resolved_config.yaml"
    config_path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    overrides_path = output_dir / "overrides.yaml"
    overrides_path.write_text(yaml.safe_dump(list(overrides), default_flow_style=False))
    return [(config_path, "config"), (overrides_path, "config")]


def model_summary(model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda text, **_: lines.append(text), line_length=100)
    return "\n".join(lines)


def write_model_artifacts(
    model, history: dict[str, list[float]], output_dir: Path
) -> list[tuple[Path, str | None]]:
    """Model summary, learning curves and, under a schedule, the rate of every step (the
    model itself is the run's Logged Model: tracking.logged_model)."""
    summary_path = output_dir / "model_summary.txt"
    summary_path.write_text(model_summary(model))
    written = [(summary_path, None)]
    if history:
        written.append((learning_curves(history, output_dir / "learning_curves.png"), "plots"))
    if getattr(model, "optimizer", None) is not None:
        rates = write_rate_plot(model.optimizer, output_dir / "learning_rate.png")
        written += [(rates, "plots")] if rates else []
    return written
