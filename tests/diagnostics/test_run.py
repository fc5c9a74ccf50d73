"""Diagnostics end to end: the real entry point in-process, its MLflow run read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.compose import FAST

# An 8 x 100 ReLU net initialized with N(0, 0.3^2) (gain 0.3 * sqrt(100) = 3 per layer)
# blows up within its first steps.
EXPLODING = [
    "model.hidden=[100]",
    "model.repeat=7",
    "init=random_normal",
    "init.stddev=0.3",
    "activation=relu",
    "optimizer.learning_rate=0.01",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metric_steps(client, run_id, key):
    return [m.step for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def artifact(workspace, run, path) -> Path:
    local = workspace.client().download_artifacts(run.info.run_id, path, str(workspace.folder))
    return Path(local)


def test_every_run_records_per_layer_diagnostics(workspace):
    assert (
        workspace.train(
            *FAST, "training.epochs=3", "diagnostics.every_n_epochs=2", "diagnostics.plots=true"
        )
        == 0
    )
    (run,) = workspace.runs()
    client = workspace.client()
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for stat in ("grad/kernel_norm", "grad/signal_std", "act/mean", "act/std", "act/dead_frac"):
        for layer in ("layer_01", "layer_02"):
            assert f"layers/{stat}/{layer}" in metrics
            # at initialization, after every 2nd epoch, and after the last
            assert metric_steps(client, run.info.run_id, f"layers/{stat}/{layer}") == [0, 2, 3]
    assert not any("act/saturated_frac" in k for k in metrics)  # Leaky ReLU
    # The headlines: each statistic's worst layer, at every probe.
    assert metrics["grad/signal_std_min"] == min(
        metrics["layers/grad/signal_std/layer_01"], metrics["layers/grad/signal_std/layer_02"]
    )
    assert metrics["act/dead_frac_max"] == max(
        metrics["layers/act/dead_frac/layer_01"], metrics["layers/act/dead_frac/layer_02"]
    )
    assert metric_steps(client, run.info.run_id, "grad/signal_std_min") == [0, 2, 3]
    assert metric_steps(client, run.info.run_id, "grad/depth_ratio") == [0, 2, 3]
    for key in ("grad/global_norm_mean", "grad/global_norm_max"):
        assert metric_steps(client, run.info.run_id, key) == [0, 1, 2]
    assert metrics["grad/global_norm_max"] >= metrics["grad/global_norm_mean"] > 0
    assert metrics["grad/depth_ratio"] == pytest.approx(
        metrics["layers/grad/signal_std/layer_01"] / metrics["layers/grad/signal_std/layer_02"]
    )

    doc = json.loads(artifact(workspace, run, "diagnostics/diagnostics.json").read_text())
    assert doc["epochs"] == [0, 2, 3]
    assert doc["layer_names"] == ["hidden_01", "hidden_02"]
    assert doc["activation"] == "leaky_relu" and doc["norms"] == "pre-clip"
    assert doc["probe_size"] == 128  # the synthetic validation split is smaller than 512
    assert doc["stats"]["grad/signal_std"][-1][0] == pytest.approx(
        metrics["layers/grad/signal_std/layer_01"]
    )
    assert doc["global_norm"]["mean"][-1] == pytest.approx(metrics["grad/global_norm_mean"])
    names = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    for png in ("gradient_signal_heatmap", "depth_profiles", "dead_saturated_fraction"):
        assert f"plots/{png}.png" in names
        content = artifact(workspace, run, f"plots/{png}.png").read_bytes()
        assert content.startswith(PNG_MAGIC) and len(content) > 5000


@pytest.mark.slow
def test_a_100_layer_net_gets_three_digit_layer_names(workspace):
    assert (
        workspace.train(
            *FAST,
            "training.epochs=1",
            "model.hidden=[8]",
            "model.repeat=99",
            "model.repeat_width=8",
            "activation=tanh",
            "init=glorot_uniform",
        )
        == 0
    )
    (run,) = workspace.runs()
    metrics = run.data.metrics
    assert {"layers/grad/signal_std/layer_001", "layers/grad/signal_std/layer_100"} <= set(metrics)
    assert "layers/act/saturated_frac/layer_050" in metrics
    assert not any("act/dead_frac" in k for k in metrics)


def test_diagnostics_can_be_switched_off(workspace):
    assert workspace.train(*FAST, "diagnostics.enabled=false") == 0
    (run,) = workspace.runs()
    assert run.info.status == "FINISHED"
    assert not any(k.startswith(("grad/", "act/")) for k in run.data.metrics)
    assert "loss" in run.data.metrics
    assert workspace.client().list_artifacts(run.info.run_id, "diagnostics") == []


def test_step_norm_off_keeps_the_probes_only(workspace):
    assert workspace.train(*FAST, "diagnostics.step_norm=false") == 0
    (run,) = workspace.runs()
    metrics = run.data.metrics
    assert "layers/grad/signal_std/layer_01" in metrics and "grad/depth_ratio" in metrics
    assert not any(k.startswith("grad/global_norm") for k in metrics)


def test_an_exploding_run_ends_failed_naming_the_epoch_and_layer(workspace):
    assert workspace.train(*FAST, *EXPLODING) == 0
    (run,) = workspace.runs()
    tags = run.data.tags
    assert run.info.status == "FAILED"
    assert tags["failed_epoch"] == "0"
    assert tags["failed_in"] in ("forward", "backward")
    layer = int(tags["failed_layer"])
    assert 1 <= layer <= 8
    assert tags["failed_layer_name"] == f"hidden_{layer:02d}"
    assert f"hidden block {layer}" in tags["failure_reason"]
    assert tags["failure_reason"].startswith("non-finite")

    doc = json.loads(artifact(workspace, run, "diagnostics/diagnostics.json").read_text())
    assert doc["failure"]["layer"] == layer and doc["failure"]["epoch"] == 0
    assert doc["epochs"][0] == 0  # the state at initialization was probed before it blew up
    names = {a.path for a in workspace.client().list_artifacts(run.info.run_id)}
    assert "model" not in names  # an exploded model is not saved


def test_without_diagnostics_the_loss_check_still_stops_an_exploding_run(workspace):
    assert workspace.train(*FAST, *EXPLODING, "diagnostics.enabled=false") == 0
    (run,) = workspace.runs()
    assert run.info.status == "FAILED"
    assert run.data.tags["failed_epoch"] == "0"
    assert "failed_layer" not in run.data.tags
    assert "non-finite" in run.data.tags["failure_reason"]
