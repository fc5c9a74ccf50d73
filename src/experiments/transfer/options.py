"""The transfer group's schema: `none`, or the reuse-of-pretrained-layers `study`.

Keras-free: the config checks read it before TensorFlow is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from experiments.core.options import Options
from experiments.models.naming import parse_layer_name

TRANSFERS = Options("transfer")
TRANSFERS.add("none")
TRANSFERS.add(
    "study",
    uses={
        "task_b_classes",
        "train_size_b",
        "baseline_epochs",
        "freeze_epochs",
        "finetune_epochs",
        "finetune_learning_rate",
        "trainable_from",
    },
    may_use={"source_run_id", "source", "register_as", "register_alias"},
)
TransferName = TRANSFERS.enum("TransferName", __name__)


@dataclass
class TransferConfig:
    """The reuse-of-pretrained-layers study (transfer=study): model A trains on every
    class but `task_b_classes` for training.epochs; task B is those two classes (1 = the
    second one) with `train_size_b` training images."""

    name: TransferName = TransferName.none
    task_b_classes: list[int] | None = None
    train_size_b: int | None = None
    baseline_epochs: int | None = None
    freeze_epochs: int | None = None
    finetune_epochs: int | None = None
    finetune_learning_rate: float | None = None
    # Which reused layers unfreeze for fine-tuning: all | none | hidden_NN (that block and
    # above) | stage_N (a conv net's stage N and above: its first stages stay frozen).
    trainable_from: str | None = None
    # Model A from an earlier run instead of training it: a run id (`source_run_id`, or
    # `source`), or a registered model `models:/<name>@<alias>` (`source`).
    source_run_id: str | None = None
    source: str | None = None
    # Register the study's model A in the Model Registry under this name, with an alias.
    register_as: str | None = None
    register_alias: str | None = None


def model_a_source(cfg: TransferConfig) -> tuple[str, str] | None:
    """(config key, value) of where model A comes from, None when the study trains it."""
    if cfg.source is not None:
        return "transfer.source", cfg.source
    if cfg.source_run_id is not None:
        return "transfer.source_run_id", cfg.source_run_id
    return None


def first_unfrozen_block(
    spec: str, n_blocks: int, stage_starts: dict[int, int] | None = None
) -> int | None:
    """The lowest hidden block (1-based) that fine-tuning trains: 1 for `all` (input BN
    included), the block's number for `hidden_NN`, the first block of stage N for
    `stage_N` (a conv net's stages: `stage_starts`, ModelConfig.stage_starts), None for
    `none` or an unknown spec."""
    if spec == "all":
        return 1
    stage = re.fullmatch(r"stage_(\d+)", spec)
    if stage:
        return (stage_starts or {}).get(int(stage.group(1)))
    parsed = parse_layer_name(spec)
    if parsed and parsed[1] is None and 1 <= parsed[0] <= n_blocks:
        return parsed[0]
    return None
