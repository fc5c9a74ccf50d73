"""Everything the probe and the training step measured in one run, and its file,
`diagnostics/diagnostics.json`: written at the end of a run, read back by the report
and the gradient verdict. NumPy only, no TensorFlow.

Statistics are per probe step (rows: steps, as epochs completed; columns: hidden
blocks from the input). Non-finite values are written as null and read back as NaN.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.models.naming import layer_metric

GRAD_STATS = ("grad/kernel_norm", "grad/signal_std")
ACT_STATS = ("act/mean", "act/std", "act/dead_frac", "act/saturated_frac")
STATS = GRAD_STATS + ACT_STATS
DEPTH_RATIO = "grad/depth_ratio"
GLOBAL_NORM_MEAN = "grad/global_norm_mean"
GLOBAL_NORM_MAX = "grad/global_norm_max"
# Headline metrics of each probe, beside the per-layer series: the statistic's worst
# layer (`grad/signal_std_min`: the weakest back-propagated signal in the net).
HEADLINES = {
    "grad/signal_std": ("min", np.min),
    "grad/kernel_norm": ("max", np.max),
    "act/std": ("min", np.min),
    "act/dead_frac": ("max", np.max),
    "act/saturated_frac": ("max", np.max),
}
FILE = "diagnostics.json"
FOLDER = "diagnostics"
ARTIFACT = f"{FOLDER}/{FILE}"


def _finite_or_none(values) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def _nan_for_none(values) -> list[float]:
    return [math.nan if v is None else float(v) for v in values or []]


@dataclass
class DiagnosticsRecord:
    layer_names: list[str]
    activation: str
    probe_size: int
    stat_names: tuple[str, ...]
    epochs: list[int] = field(default_factory=list)
    stats: dict[str, list[list[float]]] = field(default_factory=dict)
    depth_ratio: list[float] = field(default_factory=list)
    global_norm_mean: list[float] = field(default_factory=list)
    global_norm_max: list[float] = field(default_factory=list)
    global_norm_epochs: list[int] = field(default_factory=list)
    failure: dict | None = None

    @property
    def num_layers(self) -> int:
        return len(self.layer_names)

    @property
    def layers(self) -> list[int]:
        return list(range(1, self.num_layers + 1))

    # Writing, during a run.

    def add_probe(self, step: int, values: dict[str, np.ndarray]) -> dict[str, float]:
        """Keep one probe's values; return them as MLflow metrics: the headlines first
        (depth_ratio and each statistic's worst layer), then every layer's values."""
        self.epochs.append(step)
        signal = values["grad/signal_std"]
        ratio = float(signal[0] / signal[-1]) if signal[-1] != 0 else math.inf
        self.depth_ratio.append(ratio)
        metrics: dict[str, float] = {DEPTH_RATIO: ratio}
        for name, (summary, pick) in HEADLINES.items():
            if name in values and len(values[name]):
                metrics[f"{name}_{summary}"] = float(pick(values[name]))
        for name, per_layer in values.items():
            self.stats.setdefault(name, []).append([float(v) for v in per_layer])
            for block, value in enumerate(per_layer, start=1):
                metrics[layer_metric(name, block, self.num_layers)] = float(value)
        return metrics

    def add_epoch_norms(self, epoch: int, norms: dict[str, float]) -> dict[str, float]:
        self.global_norm_epochs.append(epoch)
        self.global_norm_mean.append(norms["mean"])
        self.global_norm_max.append(norms["max"])
        return {GLOBAL_NORM_MEAN: norms["mean"], GLOBAL_NORM_MAX: norms["max"]}

    def to_json(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "layer_names": self.layer_names,
            "activation": self.activation,
            "probe_size": self.probe_size,
            "norms": "pre-clip",
            "epochs": self.epochs,
            "stats": {
                name: (
                    [_finite_or_none(row) for row in self.stats[name]]
                    if name in self.stat_names and name in self.stats
                    else None
                )
                for name in STATS
            },
            "depth_ratio": _finite_or_none(self.depth_ratio),
            "global_norm": {
                "epochs": self.global_norm_epochs,
                "mean": _finite_or_none(self.global_norm_mean),
                "max": _finite_or_none(self.global_norm_max),
            },
            "failure": self.failure,
        }

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FILE
        path.write_text(json.dumps(self.to_json(), indent=1, allow_nan=False))
        return path

    # Reading, after a run.

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiagnosticsRecord:
        """A record from its file's contents; statistics that do not apply stay absent."""
        stats = {
            name: [_nan_for_none(row) for row in rows]
            for name, rows in (data.get("stats") or {}).items()
            if isinstance(rows, list) and all(isinstance(row, list) for row in rows)
        }
        layers = data.get("layers") or []
        norms = data.get("global_norm") or {}
        return cls(
            layer_names=list(data.get("layer_names") or [f"hidden_{i:02d}" for i in layers]),
            activation=str(data.get("activation", "")),
            probe_size=int(data.get("probe_size") or 0),
            stat_names=tuple(stats),
            epochs=[int(e) for e in data.get("epochs") or []],
            stats=stats,
            depth_ratio=_nan_for_none(data.get("depth_ratio")),
            global_norm_mean=_nan_for_none(norms.get("mean")),
            global_norm_max=_nan_for_none(norms.get("max")),
            global_norm_epochs=[int(e) for e in norms.get("epochs") or []],
            failure=data.get("failure"),
        )

    @classmethod
    def read(cls, text: str) -> DiagnosticsRecord:
        """Raises ValueError when the text is not a diagnostics record."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a diagnostics record")
        return cls.from_json(data)

    def matrix(self, stat: str) -> np.ndarray | None:
        """probe step x hidden block, NaN where a value was non-finite."""
        rows = self.stats.get(stat)
        if not rows:
            return None
        values = np.array(rows, dtype=float)
        return values if values.ndim == 2 else None

    def profile(self, stat: str, which: str) -> np.ndarray | None:
        """One stat over depth at the first probe step ("init") or the last ("last"); for
        a run that blew up, the last step that still has finite values."""
        values = self.matrix(stat)
        if values is None or values.size == 0:
            return None
        if which == "init":
            return values[0]
        finite = np.isfinite(values).any(axis=1).nonzero()[0]
        return values[finite[-1]] if finite.size else values[-1]

    def ratio_at(self, which: str) -> float | None:
        """depth_ratio at the first probe step ("init") or the last finite one ("last")."""
        if not self.depth_ratio:
            return None
        if which == "init":
            return self.depth_ratio[0]
        return next(
            (r for r in reversed(self.depth_ratio) if math.isfinite(r)), self.depth_ratio[-1]
        )
