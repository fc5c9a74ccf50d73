"""The gradient verdict as the run lifecycle records it: four tags on every run, searchable
with MLflow's filter syntax, `unknown` for a run that ends before it is judged."""

from __future__ import annotations

from helpers.workspace import copy_empty_store

from experiments.diagnostics import verdict
from experiments.diagnostics.record import DiagnosticsRecord
from experiments.runs import lifecycle
from experiments.tracking.store import artifact_location, ensure_experiment


def probed(signal: list[float]) -> DiagnosticsRecord:
    names = [f"hidden_{i:02d}" for i in range(1, len(signal) + 1)]
    record = DiagnosticsRecord(names, "sigmoid", 64, ("grad/signal_std",))
    record.add_probe(0, {"grad/signal_std": signal})
    return record


def test_every_run_carries_a_verdict_the_ui_can_search(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = copy_empty_store(tmp_path)
    client = MlflowClient(uri)
    experiment = ensure_experiment(client, "gradient-lab", artifact_location(uri, tmp_path))

    def run(name: str, judged: verdict.Verdict | None, status: str = "FINISHED") -> str:
        session = lifecycle.open_run(client, experiment, name, {}, tmp_path / name)
        if judged is not None:
            lifecycle.set_verdict(session, judged)
        session.end(status, None if status == "FINISHED" else "boom")
        return session.run_id

    vanishing = verdict.judge(probed([1e-4, 1e-2, 1.0]))
    sigmoid = run("sigmoid", vanishing)
    relu = run("relu", verdict.judge(probed([0.9, 1.1, 1.0])))
    crashed = run("crashed", None, "FAILED")

    def search(filter_string: str) -> list[str]:
        return [r.info.run_id for r in client.search_runs([experiment], filter_string)]

    assert search("tags.gradient_health = 'vanishing'") == [sigmoid]
    assert search("tags.gradient_health = 'healthy'") == [relu]
    assert search("tags.gradient_health_layer = 'hidden_02'") == [sigmoid]
    assert sorted(search("tags.gradient_health != ''")) == sorted([sigmoid, relu, crashed])

    tags = client.get_run(sigmoid).data.tags
    assert {k: tags[k] for k in vanishing.tags()} == vanishing.tags()
    assert tags["gradient_health_epoch"] == "0"
    assert "depth_ratio 0.0001 at epoch 0" in tags["gradient_health_reason"]
    crashed_tags = client.get_run(crashed).data.tags
    assert crashed_tags["gradient_health"] == "unknown"
    assert crashed_tags["gradient_health_reason"] == "the run ended FAILED before it was judged"
