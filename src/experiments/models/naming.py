"""The one naming scheme of hidden blocks, for layers and for metrics.

Layers: hidden block NN (numbered from the input, from 1) is the Dense layer `hidden_NN`,
its activation `hidden_NN_act` and its normalization `hidden_NN_bn` (BatchNormalization),
`hidden_NN_ln` (LayerNormalization) or `hidden_NN_gn` (GroupNormalization); NN has two
digits at least, so the names sort. In a conv net `hidden_NN` is a Conv2D layer: its conv
blocks come first, numbered from the input, then the Dense blocks of its head; the layers
between blocks (the channel axis, pooling) belong to none.
A skip connection that ends at block NN adds its shortcut there (`hidden_NN_add`), through
a linear projection `hidden_NN_skip` (a 1x1 conv in a conv net) when the shapes differ, and its branch scaled by
`hidden_NN_scale` when the scale is not 1. Every layer of a block, skip layers included,
belongs to that block (`block_of_layer`), so gradients and failures name it.

Metrics: statistic `grad/signal_std` of block NN is `layers/grad/signal_std/layer_NN`, NN
with three digits once the net has 100 blocks or more, so the MLflow UI sorts a deep net's
layers. The `layers/` prefix keeps their hundreds of series together, in one section of
the UI, apart from the run's headline metrics; runs recorded before it have
`grad/signal_std/layer_NN`, which `parse_layer_metric` still reads.
"""

from __future__ import annotations

import re

PREFIX = "hidden_"
ACTIVATION = "act"
BATCHNORM = "bn"
LAYERNORM = "ln"
GROUPNORM = "gn"
SKIP = "skip"
ADD = "add"
SCALE = "scale"
_LAYER = re.compile(r"^hidden_(\d+)(?:_([a-z]+))?$")
_METRIC_LABEL = re.compile(r"^layer_(\d+)$")
LAYER_METRICS = "layers"


def block_name(block: int, role: str | None = None) -> str:
    """`hidden_07` (the Dense layer), `hidden_07_act`, `hidden_07_bn`."""
    name = f"{PREFIX}{block:02d}"
    return f"{name}_{role}" if role else name


def parse_layer_name(name: str) -> tuple[int, str | None] | None:
    """(block, role) of a hidden block's layer (role None: the Dense layer), else None."""
    match = _LAYER.match(name)
    return (int(match.group(1)), match.group(2)) if match else None


def block_of_layer(name: str) -> int:
    """The hidden block a layer belongs to (1-based), or 0 for any other layer."""
    parsed = parse_layer_name(name)
    return parsed[0] if parsed else 0


def block_of_variable(path: str) -> int:
    """The hidden block of a variable path like `hidden_07/kernel` or `mlp/hidden_07_bn/gamma`."""
    parts = path.split("/")
    return block_of_layer(parts[-2]) if len(parts) >= 2 else 0


def metric_label(block: int, num_blocks: int) -> str:
    """`layer_07`; `layer_007` in a net of 100 or more hidden blocks."""
    return f"layer_{block:0{3 if num_blocks >= 100 else 2}d}"


def block_of_metric_label(label: str) -> int | None:
    match = _METRIC_LABEL.match(label)
    return int(match.group(1)) if match else None


def layer_metric(stat: str, block: int, num_blocks: int) -> str:
    """`layers/grad/signal_std/layer_007`: one statistic of one hidden block."""
    return f"{LAYER_METRICS}/{stat}/{metric_label(block, num_blocks)}"


def parse_layer_metric(key: str) -> tuple[str, int] | None:
    """(statistic, block) of a per-layer metric key, in this or the earlier naming."""
    stat, _, label = key.rpartition("/")
    block = block_of_metric_label(label)
    if block is None or not stat:
        return None
    prefix = LAYER_METRICS + "/"
    return (stat[len(prefix) :] if stat.startswith(prefix) else stat), block
