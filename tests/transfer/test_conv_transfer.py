"""The transfer study with a conv net with skips (model=cnn, model.residual): model A
trained on one set, its first stage frozen while B on A fine-tunes (trainable_from=
stage_2), then reused by a second study on another set of the same image shape (an npz
file of the user's), through the real entry point."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.workspace import Workspace

pytestmark = [pytest.mark.xdist_group("transfer.test_conv_transfer"), pytest.mark.slow]

CONV_STUDY = [
    "experiment=transfer",
    "model=cnn",
    "model.stem=4",
    "model.filters=[4,8]",
    "model.blocks=[2,2]",
    "model.hidden=[]",
    "model.residual=true",
    "activation=relu",
    "init=he_normal",
    "training.epochs=1",
    "training.verbose=0",
    "optimizer.learning_rate=0.05",
    "transfer.baseline_epochs=1",
    "transfer.freeze_epochs=1",
    "transfer.finetune_epochs=1",
    "transfer.trainable_from=stage_2",
    "diagnostics.plots=false",
]
SYNTHETIC = [
    "data=synthetic",
    "data.image_size=8",
    "data.train_size=320",
    "data.validation_size=64",
    "data.test_size=64",
]


def _runs(ws: Workspace, name: str):
    return [r for r in ws.runs() if r.info.run_name == name]


def test_a_conv_net_with_skips_transfers_and_its_model_a_serves_another_data_set(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "ws").mkdir()
    ws = Workspace(tmp_path / "ws")
    assert ws.train(*CONV_STUDY, *SYNTHETIC) == 0
    (study,) = [r for r in ws.runs() if r.data.tags.get("transfer_study") == "true"]
    assert study.info.status == "FINISHED"
    (b_on_a,) = _runs(ws, "B_on_A")
    params = b_on_a.data.params
    # Frozen: everything reused; fine-tuning: stage 2 (blocks 4, 5 and their skip) and up.
    assert int(params["freeze.trainable_params"]) == 8 + 1  # the new sigmoid unit
    stage_2 = (3 * 3 * 4 * 8 + 8) + (3 * 3 * 8 * 8 + 8) + 1 * 1 * 4 * 8  # convs 4, 5, skip
    assert int(params["finetune.trainable_params"]) == stage_2 + 8 + 1
    assert "layers/grad/signal_std/layer_05" in b_on_a.data.metrics

    # Another data set, the same 8x8 images: the user's npz file.
    rng = np.random.default_rng(1)
    path = tmp_path / "other.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, size=(300, 8, 8), dtype=np.uint8),
        y_train=np.arange(300) % 10,
        x_test=rng.integers(0, 256, size=(60, 8, 8), dtype=np.uint8),
        y_test=np.arange(60) % 10,
    )
    other = ["data=npz", f"data.path={path}", "data.validation_size=60"]
    assert ws.train(*CONV_STUDY, *other, f"transfer.source={study.info.run_id}") == 0
    second = [
        r
        for r in ws.runs()
        if r.data.tags.get("transfer_study") == "true" and r.info.run_id != study.info.run_id
    ]
    assert [r.info.status for r in second] == ["FINISHED"]
    (pretrain, _) = sorted(_runs(ws, "pretrain_A"), key=lambda r: r.info.start_time)[::-1]
    assert pretrain.data.tags["model_A_source"] == study.info.run_id
