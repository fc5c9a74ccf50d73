"""A Hydra multirun over the study: sweep run -> one study run per job -> three phase runs."""

from __future__ import annotations

import pytest

TINY_STUDY = [
    "experiment=transfer",
    "data=synthetic",
    "model.hidden=[16]",
    "training.epochs=1",
    "training.verbose=0",
    "optimizer.learning_rate=0.05",
    "transfer.baseline_epochs=1",
    "transfer.finetune_epochs=1",
]


@pytest.mark.slow
def test_a_sweep_nests_each_study_under_the_sweep_run(workspace):
    assert workspace.train("-m", *TINY_STUDY, "transfer.freeze_epochs=0,2") == 0

    runs = workspace.runs()
    by_parent: dict[str | None, list] = {}
    for run in runs:
        by_parent.setdefault(run.data.tags.get("mlflow.parentRunId"), []).append(run)
    (sweep,) = by_parent[None]
    assert sweep.data.tags["sweep"] == "true"
    assert sweep.data.metrics["children_finished"] == 2

    studies = by_parent[sweep.info.run_id]
    assert len(studies) == 2 and all(s.data.tags["transfer_study"] == "true" for s in studies)
    client = workspace.client()
    for study in studies:
        children = {r.info.run_name: r for r in by_parent[study.info.run_id]}
        assert sorted(children) == ["B_on_A", "baseline_B", "pretrain_A"]
        freeze = int(study.data.params["transfer.freeze_epochs"])
        b_on_a = children["B_on_A"]
        # No freeze phase at freeze_epochs=0: its params and frozen epochs are absent.
        assert ("freeze.epochs" in b_on_a.data.params) == (freeze > 0)
        phase = client.get_metric_history(b_on_a.info.run_id, "reused_layers_trainable")
        assert [(m.step, m.value) for m in phase] == [
            (s, float(s >= freeze)) for s in range(freeze + 1)
        ]
        assert (
            "error_rate_ratio" in study.data.metrics
            or study.data.metrics["test_accuracy_transfer"] == 1.0
        )
    assert sorted(int(s.data.params["transfer.freeze_epochs"]) for s in studies) == [0, 2]
