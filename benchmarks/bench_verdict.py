"""Where the gradient verdict's thresholds come from: each paper net of
tests/diagnostics/test_papers.py probed at initialization over seeds 0-4, with its
depth_ratio, its worst layer's dead or saturated share and the verdict
(docs/diagnostics.md has the table). BENCH_VERDICT_SEEDS changes the number of seeds.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

STANDARD = [
    "init=variance_scaling",
    f"init.scale={1 / 3!r}",
    "init.mode=fan_in",
    "init.distribution=uniform",
]
DEEP = ["model.hidden=[300]", "model.repeat=99", "model.repeat_width=100"]


def _hidden(width: int, depth: int) -> list[str]:
    return [f"model.hidden=[{','.join([str(width)] * depth)}]", "model.repeat=0"]


# (name, layers, init, activation, standardized inputs)
NETS = [
    ("5 x 1000 sigmoid, standard init", _hidden(1000, 5), STANDARD, "sigmoid", False),
    ("5 x 1000 tanh, standard init", _hidden(1000, 5), STANDARD, "tanh", False),
    ("5 x 1000 tanh, glorot_uniform", _hidden(1000, 5), ["init=glorot_uniform"], "tanh", False),
    ("5 x 1000 ReLU, he_normal", _hidden(1000, 5), ["init=he_normal"], "relu", False),
    ("30 x 100 ReLU, he_normal", _hidden(100, 30), ["init=he_normal"], "relu", False),
    ("30 x 100 ReLU, glorot_uniform", _hidden(100, 30), ["init=glorot_uniform"], "relu", False),
    ("100 layers ReLU, he_normal", DEEP, ["init=he_normal"], "relu", False),
    ("100 layers SELU, lecun_normal", DEEP, ["init=lecun_normal"], "selu", True),
]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    import experiments.config.schema  # noqa: F401  (stores the schema that compose needs)
    from experiments.config.checks import validate
    from experiments.paths import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return validate(compose("config", overrides=overrides))


def _images(standardize: bool):
    from experiments import data

    overrides = [
        "data=synthetic",
        "data.validation_size=512",
        "data.train_size=1024",
        "data.test_size=16",
        "data.noise=0.35",
        f"data.standardize={standardize}",
    ]
    splits = data.load(_compose(overrides).data)
    return splits.x_val, splits.y_val


def _probe(layers, init, activation, x, y, seed):
    from experiments.diagnostics.probe import Probe
    from experiments.diagnostics.record import DiagnosticsRecord
    from experiments.diagnostics.verdict import judge
    from experiments.models.nets import build_model
    from experiments.training import loop as training
    from experiments.training.optimizers import make_optimizer

    cfg = _compose([*layers, *init, f"activation={activation}", f"training.seed={seed}"])
    training.seed_everything(seed)
    model = build_model(cfg.model, cfg.init, cfg.activation, cfg.normalization, x.shape[1:], 10)
    training.compile_model(model, make_optimizer(cfg.optimizer, cfg.clipping), cfg.training)
    probe = Probe(model, x, y, activation)
    values = probe()
    record = DiagnosticsRecord(
        [b.dense.name for b in probe.blocks], activation, len(x), probe.stats
    )
    record.add_probe(0, values)
    units = values.get("act/dead_frac", values.get("act/saturated_frac"))
    return record.depth_ratio[0], float(units.max()), judge(record).health


def main() -> None:
    seeds = range(int(os.environ.get("BENCH_VERDICT_SEEDS", "5")))
    images = {standardize: _images(standardize) for standardize in (False, True)}
    print(f"at initialization, 512 synthetic images, seeds {seeds.start}-{seeds.stop - 1}:")
    for name, layers, init, activation, standardize in NETS:
        found = [_probe(layers, init, activation, *images[standardize], s) for s in seeds]
        ratios = [r for r, _, _ in found]
        units = [u for _, u, _ in found]
        words = sorted({v for _, _, v in found})
        kind = "dead" if activation in ("relu", "selu") else "saturated"
        print(
            f"  {name}: depth_ratio {min(ratios):.2g} to {max(ratios):.2g}; worst layer "
            f"{kind} {min(units):.0%} to {max(units):.0%}; verdict {', '.join(words)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
